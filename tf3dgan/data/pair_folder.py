"""Users' own (image, shape) pairs: a folder with a manifest.csv listing them.

The manifest is a CSV file with a header line naming the columns ``image`` and ``shape``
and, optionally, ``label``; each further line is one pair::

    image,shape,label
    photos/chair_1.jpg,shapes/chair_1.binvox,chair
    photos/chair_1_side.png,shapes/chair_1.binvox,chair
    photos/table.jpg,meshes/table.obj,table

Paths are relative to the folder (absolute paths work too). Pictures are PNG or JPEG (any
format Pillow reads); shapes are .binvox, .npy or 3D ShapeNets .mat grids, or meshes that
trimesh reads (.off, .obj, .stl, .ply, .glb, ...), voxelized as
:mod:`tf3dgan.data.voxelize` does. A shape listed on several lines is read once and shared.

Pictures become RGB (transparent parts are laid over the renderer's background grey), are
padded to a square with that grey, keeping the whole picture, and resized to
``image_size``. Grids whose edge is an integer multiple or divisor of the resolution are
resampled to it (:func:`tf3dgan.data.shape_reader.fit_resolution`).

Every problem raises an error that names the manifest line, the file and the fix.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from tf3dgan.data import render, voxelize
from tf3dgan.data.binvox import check_up_axis

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("image", "shape")
OPTIONAL_COLUMNS = ("label",)
GRID_EXTENSIONS = ("binvox", "npy", "mat")
UNLABELLED = "unlabelled"


def load_pair_folder(folder: str | os.PathLike, resolution: int, image_size: int, *,
                     fill: str = "solid", up_axis: str = "z"):
    """Read the pairs a folder's manifest.csv lists (see the module docstring).

    Args:
        folder: The folder holding ``manifest.csv``.
        resolution: Edge R of the grids to return.
        image_size: Side of the square pictures to return, at least 8.
        fill: "solid" or "surface", for meshes.
        up_axis: The shapes' up axis ("x", "y" or "z"), rotated onto z.

    Returns:
        A :class:`tf3dgan.data.image_pairs.PairSet`, one pair per manifest line in order;
        its viewpoints are NaN. Labels index the sorted label names, or, without a label
        column, all are 0 with class_names ("unlabelled",).

    Raises:
        FileNotFoundError: if the folder, its manifest, or a listed file does not exist.
        ValueError: naming the manifest line and file, for an empty manifest, a missing or
            unknown column, an empty cell, a picture that cannot be read, a shape that cannot
            be read or resampled to ``resolution``, or one shape given two labels.
    """
    from tf3dgan.data.image_pairs import PairSet

    image_size = render.check_image_size(image_size)
    if not isinstance(resolution, (int, np.integer)) or isinstance(resolution, bool) \
            or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}; e.g. 32.")
    if fill not in voxelize.FILL_MODES:
        raise ValueError(f"fill must be one of {voxelize.FILL_MODES}, got {fill!r}.")
    check_up_axis(up_axis)
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Pair folder {folder!r} does not exist or is not a folder.")
    manifest = os.path.join(folder, MANIFEST_NAME)
    rows = _read_manifest(manifest)

    images, shape_index, grids, shape_labels = [], [], [], []
    shape_rows: dict[str, int] = {}
    for line, row in rows:
        where = f"{manifest} line {line}"
        images.append(_read_image(_resolve(folder, row["image"], "image", where),
                                  row["image"], image_size, where))
        shape_path = _resolve(folder, row["shape"], "shape", where)
        key = os.path.realpath(shape_path)
        label = row.get("label", UNLABELLED)
        if key not in shape_rows:
            shape_rows[key] = len(grids)
            grids.append(_read_shape(shape_path, row["shape"], resolution, fill, up_axis, where))
            shape_labels.append((label, line))
        elif shape_labels[shape_rows[key]][0] != label:
            first_label, first_line = shape_labels[shape_rows[key]]
            raise ValueError(
                f"{where}: shape {row['shape']!r} has label {label!r}, but line {first_line} "
                f"gave it {first_label!r}; give each shape one label.")
        shape_index.append(shape_rows[key])

    class_names = tuple(sorted({label for label, _ in shape_labels}))
    labels = np.array([class_names.index(label) for label, _ in shape_labels], np.int64)
    return PairSet(
        images=np.stack(images), shape_index=np.array(shape_index, np.int64),
        voxels=np.stack(grids), labels=labels, class_names=class_names,
        viewpoints=np.full((len(images), 2), np.nan, np.float32),
        description=(f"{manifest}: {len(images)} pairs of {len(grids)} shapes at "
                     f"{resolution}^3, pictures at {image_size}x{image_size}"))


def _read_manifest(manifest: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of each pair, with the header checked and cells stripped."""
    example = "image,shape,label\nphotos/chair.jpg,shapes/chair.binvox,chair"
    if not os.path.isfile(manifest):
        raise FileNotFoundError(
            f"There is no {MANIFEST_NAME} at {manifest!r}. Write one: a header line "
            f"'image,shape' (optionally ',label') and one line per pair, paths relative to the "
            f"folder, e.g.\n{example}")
    # utf-8-sig: spreadsheets often start CSV files with a byte-order mark.
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise ValueError(f"{manifest} is empty; its first line must be the header "
                             f"'image,shape' (optionally ',label'), e.g.\n{example}")
        columns = [cell.strip().lower() for cell in header]
        header_line = reader.line_num
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown or len(set(columns)) != len(columns):
            raise ValueError(
                f"{manifest} line {header_line}: the header has the columns {columns}; it "
                f"must name {list(REQUIRED_COLUMNS)} and may add {list(OPTIONAL_COLUMNS)}, each "
                f"once{f' (missing: {missing})' if missing else ''}"
                f"{f' (unknown: {unknown})' if unknown else ''}. Fix the first line, e.g. "
                "'image,shape,label'.")
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines
            line = reader.line_num
            if len(cells) != len(columns):
                raise ValueError(
                    f"{manifest} line {line}: {len(cells)} fields, but the header has "
                    f"{len(columns)} ({','.join(columns)}); quote paths that contain commas.")
            row = {name: cell.strip() for name, cell in zip(columns, cells)}
            empty = [name for name, value in row.items() if not value]
            if empty:
                raise ValueError(f"{manifest} line {line}: the {' and '.join(empty)} cell is "
                                 "empty; fill it in or delete the line.")
            rows.append((line, row))
    if not rows:
        raise ValueError(f"{manifest} lists no pairs: it has a header but no further lines. Add "
                         f"one line per pair, e.g.\n{example}")
    return rows


def _resolve(folder: str, relative: str, column: str, where: str) -> str:
    path = os.path.join(folder, relative)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{where}: {column} {relative!r} not found (looked for {os.path.abspath(path)!r}); "
            f"paths are relative to {folder!r}. Fix the path or add the file.")
    return path


def _read_image(path: str, relative: str, image_size: int, where: str) -> np.ndarray:
    """A picture as uint8 [S, S, 3]: RGB over the background grey, padded square, resized."""
    from PIL import Image

    background = tuple(int(value) for value in render.BACKGROUND_COLOR)
    try:
        with Image.open(path) as opened:
            opened.load()
            picture = opened.convert("RGBA")
    except Exception as error:  # Pillow raises several types for unreadable files
        raise ValueError(
            f"{where}: image {relative!r} ({path}) cannot be read as a picture "
            f"({type(error).__name__}: {error}); save it as PNG or JPEG.") from error
    flattened = Image.new("RGB", picture.size, background)
    flattened.paste(picture, mask=picture.getchannel("A"))
    width, height = flattened.size
    side = max(width, height)
    square = Image.new("RGB", (side, side), background)
    square.paste(flattened, ((side - width) // 2, (side - height) // 2))
    resized = square.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def _read_shape(path: str, relative: str, resolution: int, fill: str, up_axis: str,
                where: str) -> np.ndarray:
    """One shape file as a uint8 [R, R, R] grid."""
    import trimesh

    from tf3dgan.data import layouts, shape_reader

    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in GRID_EXTENSIONS and extension not in trimesh.available_formats():
        raise ValueError(
            f"{where}: shape {relative!r} has the extension '.{extension}', which is neither a "
            f"grid ({', '.join('.' + name for name in GRID_EXTENSIONS)}) nor a mesh format "
            "trimesh reads (.off, .obj, .stl, .ply, .glb, ...); convert it to one of those.")
    shape = layouts.ShapeFile(path=path, member="", relative=relative, class_name="",
                              split="")
    settings = shape_reader.ReadSettings(resolution=resolution, fill=fill, up_axis=up_axis)
    try:
        return shape_reader.read_shape(shape, settings)
    except Exception as error:  # every reader's failure becomes one message naming the line
        reason = getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
        raise ValueError(
            f"{where}: shape {relative!r} ({path}) cannot be used: {str(reason).rstrip('.')}. Fix or replace the "
            f"file (grids must be cubic, non-empty, and {resolution}^3 or an integer multiple "
            f"or divisor of it).") from error

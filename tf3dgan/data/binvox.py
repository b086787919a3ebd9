"""Reading and writing .binvox voxel files (Patrick Min's binvox, format version 1).

The format (https://www.patrickmin.com/binvox/binvox.html): an ASCII header ::

    #binvox 1
    dim D W H
    translate tx ty tz
    scale s
    data

binvox's own reader (read_binvox.cc) reads the header word by word and skips the rest of a
line that starts with a word it does not know, so ``#`` comment lines and a ``# ...`` after a
value are read past; ours skips them too, takes words separated by any whitespace and lines
that end in CRLF, but still refuses a line with an unknown keyword (a file that is not what
its name says).

Then come the voxels as run-length pairs of bytes ``(value, count)``: ``value`` is 0 or 1 and
``count`` is 1..255 voxels. The voxel at binvox coordinates ``(x, y, z)`` is number
``x * (W * H) + z * W + y`` in that sequence: y runs fastest, then z, then x. ``translate``
and ``scale`` map the unit cube the grid fills back to the original mesh's coordinates:
``mesh = scale * (index + 0.5) / D + translate``; they are kept as read, in the file's frame.

Axis mapping. binvox (and its viewer viewvox) treats +y as up, as in ShapeNet's meshes; our
grids are (x, y, z) with z up and index 0 of axis 2 the floor. By default (``up_axis="y"``) a
file is turned into our frame by the proper rotation of +90 degrees about x, never by a mirror:

    ours (x, y, z) = binvox (x, -z, y)

so binvox's +y becomes our +z and binvox's +z becomes our -y (swapping y and z alone would
mirror the shape, which a rotation never does). binvox voxelizes a mesh in the mesh's own frame, so a file made
from a z-up mesh (ModelNet's .off files are z-up) is already z-up: read it with
``up_axis="z"`` (the identity). ``up_axis="x"`` is the rotation taking +x to +z.
The same rotations, from :data:`UP_AXIS_ROTATIONS`, are used by the .mat reader and by the
mesh voxelizer, so one ``up_axis`` means the same thing everywhere.

Only cubic grids are supported, as in the rest of the project.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import BinaryIO

import numpy as np

# Our axis a is taken from the source's axis SOURCE[a], negated where SIGN[a] is -1: a signed
# axis permutation with determinant +1 (a rotation, no mirroring) that takes `up_axis` to +z.
UP_AXIS_ROTATIONS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "z": ((0, 1, 2), (1, 1, 1)),    # identity
    "y": ((0, 2, 1), (1, -1, 1)),   # (x, y, z) -> (x, -z, y): +90 degrees about x
    "x": ((2, 1, 0), (-1, 1, 1)),   # (x, y, z) -> (-z, y, x): -90 degrees about y
}

# Comment lines count, so the limit only guards against reading a whole non-binvox file.
_MAX_HEADER_LINES = 256
_MAX_HEADER_LINE_BYTES = 1024
_MAX_RUN = 255


@dataclasses.dataclass(frozen=True, eq=False)
class BinvoxGrid:
    """The content of one .binvox file.

    Attributes:
        voxels: uint8 array [R, R, R] of 0/1, axes (x, y, z) with z up (see the module
            docstring for the mapping from binvox's y-up frame). May be all zero: binvox
            writes empty grids for meshes it failed on, and callers decide what to do.
        dims: The ``dim`` line as written, (depth, width, height).
        translate: The ``translate`` line, in the file's own (binvox) frame.
        scale: The ``scale`` line.
    """

    voxels: np.ndarray
    dims: tuple[int, int, int]
    translate: tuple[float, float, float]
    scale: float


def check_up_axis(up_axis: str) -> str:
    """Validate an ``up_axis`` argument.

    Args:
        up_axis: "x", "y" or "z": the source's axis that points up.

    Returns:
        ``up_axis`` unchanged.

    Raises:
        ValueError: if it is not one of "x", "y", "z".
    """
    if not isinstance(up_axis, str) or up_axis not in UP_AXIS_ROTATIONS:
        raise ValueError(
            f"up_axis must be one of {tuple(UP_AXIS_ROTATIONS)}, got {up_axis!r}; pass the "
            "source's axis that points up (binvox and ShapeNet: 'y', ModelNet: 'z').")
    return up_axis


def rotate_to_z_up(voxels: np.ndarray, up_axis: str) -> np.ndarray:
    """Rotate a cubic grid whose up axis is ``up_axis`` into our z-up frame.

    Args:
        voxels: Array [R, R, R] in the source's (x, y, z) axis order.
        up_axis: The source axis that points up: "x", "y" or "z".

    Returns:
        A contiguous array [R, R, R] in our (x, y, z) order, z up (see UP_AXIS_ROTATIONS).

    Raises:
        ValueError: if ``up_axis`` is not "x", "y" or "z".
    """
    source, sign = UP_AXIS_ROTATIONS[check_up_axis(up_axis)]
    rotated = np.transpose(voxels, source)
    flips = tuple(axis for axis in range(3) if sign[axis] < 0)
    return np.ascontiguousarray(np.flip(rotated, flips) if flips else rotated)


def rotate_from_z_up(voxels: np.ndarray, up_axis: str) -> np.ndarray:
    """The inverse of :func:`rotate_to_z_up`: our z-up grid back into a frame with ``up_axis`` up.

    Args:
        voxels: Array [R, R, R] in our (x, y, z) order, z up.
        up_axis: The target frame's up axis: "x", "y" or "z".

    Returns:
        A contiguous array [R, R, R] in the target's (x, y, z) order.

    Raises:
        ValueError: if ``up_axis`` is not "x", "y" or "z".
    """
    source, sign = UP_AXIS_ROTATIONS[check_up_axis(up_axis)]
    flips = tuple(axis for axis in range(3) if sign[axis] < 0)
    unflipped = np.flip(voxels, flips) if flips else voxels
    return np.ascontiguousarray(np.transpose(unflipped, np.argsort(source)))


def read_binvox(path_or_fileobj: str | os.PathLike | BinaryIO, *,
                up_axis: str = "y") -> BinvoxGrid:
    """Read a .binvox file into our (x, y, z), z-up grid convention.

    Args:
        path_or_fileobj: A path, or a binary file object positioned at the file's start.
        up_axis: The file's up axis: "y" (binvox's convention, the default), "z" for files
            voxelized from z-up meshes such as ModelNet's, or "x".

    Returns:
        A :class:`BinvoxGrid` whose ``voxels`` are uint8 [R, R, R] in {0, 1}, z up.

    Raises:
        FileNotFoundError: if a path is given and does not exist.
        ValueError: naming the file, for a bad header, non-cubic dims, a value byte other
            than 0/1, a zero count, truncated data, or run lengths that do not add up to
            D * W * H; also for a bad ``up_axis``.
    """
    check_up_axis(up_axis)
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        path = os.fspath(path_or_fileobj)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"binvox file {path!r} does not exist.")
        with open(path, "rb") as file:
            return _read(file, repr(path), up_axis)
    return _read(path_or_fileobj, _describe(path_or_fileobj), up_axis)


def write_binvox(path_or_fileobj: str | os.PathLike | BinaryIO, voxels: np.ndarray,
                 translate: tuple[float, float, float] = (0.0, 0.0, 0.0), scale: float = 1.0,
                 *, up_axis: str = "y") -> None:
    """Write a grid in our (x, y, z), z-up convention as a .binvox (version 1) file.

    ``read_binvox(path, up_axis=u).voxels`` gives back exactly ``voxels`` when written with
    the same ``up_axis=u``.

    Args:
        path_or_fileobj: Destination path (overwritten), or a writable binary file object.
        voxels: Array [R, R, R] of 0/1 values (bool, integer or float), axes (x, y, z), z up.
        translate: The header's ``translate`` (mesh coordinates of the grid's corner, in the
            file's frame); three finite numbers.
        scale: The header's ``scale`` (the mesh length the grid's side spans); finite, > 0.
        up_axis: The up axis of the frame the file is written in; "y" (binvox's own) by default.

    Raises:
        ValueError: if ``voxels`` is not a non-empty cubic 3-D array of 0/1 values, if
            ``translate`` or ``scale`` are not finite (``scale`` > 0), or for a bad ``up_axis``.
    """
    grid = _check_grid(voxels)
    check_up_axis(up_axis)
    offsets = _check_translate(translate)
    factor = _check_scale(scale)
    size = grid.shape[0]
    # binvox order is x slowest, then z, then y fastest: array axes (x, z, y).
    raw = np.transpose(rotate_from_z_up(grid, up_axis), (0, 2, 1)).ravel()
    header = (f"#binvox 1\ndim {size} {size} {size}\n"
              f"translate {offsets[0]!r} {offsets[1]!r} {offsets[2]!r}\n"
              f"scale {factor!r}\ndata\n").encode("ascii")
    payload = header + _encode_runs(raw)
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(os.fspath(path_or_fileobj), "wb") as file:
            file.write(payload)
    else:
        path_or_fileobj.write(payload)


# ---------------------------------------------------------------------------------------------
# Decoding.
# ---------------------------------------------------------------------------------------------


def _describe(fileobj: object) -> str:
    """Name of a file object for error messages."""
    name = getattr(fileobj, "name", None)
    return repr(name) if isinstance(name, (str, bytes)) else f"<{type(fileobj).__name__}>"


def _read(file: BinaryIO, name: str, up_axis: str) -> BinvoxGrid:
    """Parse an open binvox file; ``name`` is used in error messages."""
    dims, translate, scale = _read_header(file, name)
    size = dims[0]
    flat = _decode_runs(np.frombuffer(file.read(), dtype=np.uint8), dims, name)
    # File order is (x, z, y); (x, y, z) in binvox's frame, then rotated into ours.
    raw = flat.reshape(size, size, size)
    voxels = rotate_to_z_up(np.transpose(raw, (0, 2, 1)), up_axis)
    return BinvoxGrid(voxels=voxels, dims=dims, translate=translate, scale=scale)


def _read_header(file: BinaryIO, name: str
                 ) -> tuple[tuple[int, int, int], tuple[float, float, float], float]:
    """Read the header up to and including its 'data' line: (dims, translate, scale)."""
    first = file.readline(_MAX_HEADER_LINE_BYTES)
    words = first.split()
    # The first line itself starts with '#': only what follows "#binvox" can be a comment.
    version = (_without_comment(first.lstrip()[len(b"#binvox"):]).split()
               if words and words[0] == b"#binvox" else [])
    if not version:
        raise ValueError(
            f"binvox file {name}: bad header: the first line is {first[:40]!r}; expected "
            "b'#binvox 1'. Is it a .binvox file?")
    if version != [b"1"]:
        raise ValueError(
            f"binvox file {name}: format version "
            f"{b' '.join(version).decode('ascii', 'replace')!r}; only version 1 (0/1 voxels) is "
            "supported. Version 2 files come from binvox_merge; re-run binvox on the mesh for a "
            "version 1 file.")

    fields: dict[str, list[bytes]] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = _header_line(file)
        if not line:
            raise ValueError(
                f"binvox file {name}: bad header: the file ends before the 'data' line "
                f"(header so far: {sorted(fields)}). The file is truncated.")
        words = _without_comment(line).split()
        keyword = words[0].decode("ascii", "replace") if words else ""
        if keyword == "data":
            break
        if keyword not in ("", "dim", "translate", "scale"):
            raise ValueError(
                f"binvox file {name}: bad header: unknown line {line[:40]!r}; expected "
                "'dim', 'translate', 'scale', 'data' or a '#' comment.")
        if keyword in fields:
            raise ValueError(f"binvox file {name}: bad header: {keyword!r} appears twice.")
        if keyword:
            fields[keyword] = words[1:]
    else:
        raise ValueError(
            f"binvox file {name}: bad header: no 'data' line within {_MAX_HEADER_LINES} lines.")

    if "dim" not in fields:
        raise ValueError(f"binvox file {name}: bad header: the 'dim D W H' line is missing.")
    dims = _parse_numbers(fields["dim"], 3, int, "dim", name)
    if min(dims) < 1:
        raise ValueError(f"binvox file {name}: bad header: dim {dims} must be positive.")
    if len(set(dims)) != 1:
        raise ValueError(
            f"binvox file {name}: dims {dims} are not cubic; only cubic R x R x R grids are "
            "supported. Re-run binvox with -d R (it writes cubic grids).")
    # translate and scale "may be omitted" according to the format page.
    translate = (_parse_numbers(fields["translate"], 3, float, "translate", name)
                 if "translate" in fields else (0.0, 0.0, 0.0))
    scale = (_parse_numbers(fields["scale"], 1, float, "scale", name)[0]
             if "scale" in fields else 1.0)
    return dims, translate, scale


def _header_line(file: BinaryIO) -> bytes:
    """One header line, at most _MAX_HEADER_LINE_BYTES of it.

    A line that is longer only because of its comment is read to its end, so that the rest
    of the comment is not taken for the next line.
    """
    line = file.readline(_MAX_HEADER_LINE_BYTES)
    if len(line) == _MAX_HEADER_LINE_BYTES and not line.endswith(b"\n") and b"#" in line:
        rest = line
        while rest and not rest.endswith(b"\n"):
            rest = file.readline(_MAX_HEADER_LINE_BYTES)
    return line


def _without_comment(line: bytes) -> bytes:
    """The line up to its '#', if any: binvox's readers skip the rest as a comment."""
    return line.split(b"#", 1)[0]


def _decode_runs(data: np.ndarray, dims: tuple[int, int, int], name: str) -> np.ndarray:
    """Expand (value, count) byte pairs into the flat uint8 voxel sequence, checking them."""
    expected = dims[0] * dims[1] * dims[2]
    if data.size % 2:
        raise ValueError(
            f"binvox file {name}: truncated data: {data.size} bytes after the header, an odd "
            "number; the data must be (value, count) byte pairs.")
    values, counts = data[0::2], data[1::2]
    bad_values = np.unique(values[values > 1])
    if bad_values.size:
        raise ValueError(
            f"binvox file {name}: corrupt data: value bytes {bad_values[:5].tolist()} found; "
            "version 1 allows only 0 and 1.")
    if counts.size and counts.min() == 0:
        raise ValueError(
            f"binvox file {name}: corrupt data: a run has count 0; counts must be 1..255.")
    total = int(counts.sum(dtype=np.int64))
    if total < expected:
        raise ValueError(
            f"binvox file {name}: truncated data: the run lengths add up to {total} voxels, "
            f"but dim {dims} needs {expected}.")
    if total > expected:
        raise ValueError(
            f"binvox file {name}: corrupt data: the run lengths add up to {total} voxels, "
            f"more than the {expected} of dim {dims}.")
    return np.repeat(values, counts)


def _parse_numbers(words: list[bytes], count: int, kind: type, keyword: str,
                   name: str) -> tuple:
    """Parse exactly ``count`` numbers of type ``kind`` from one header line."""
    text = b" ".join(words).decode("ascii", "replace")
    numbers: tuple = ()
    if len(words) == count:
        try:
            numbers = tuple(kind(word) for word in words)
        except ValueError:
            numbers = ()
    if not numbers:
        raise ValueError(
            f"binvox file {name}: bad header: '{keyword} {text}' should be followed by "
            f"{count} {'integers' if kind is int else 'numbers'}.")
    if kind is float and not all(math.isfinite(number) for number in numbers):
        raise ValueError(f"binvox file {name}: bad header: '{keyword} {text}' is not finite.")
    return numbers


# ---------------------------------------------------------------------------------------------
# Encoding.
# ---------------------------------------------------------------------------------------------


def _check_grid(voxels: np.ndarray) -> np.ndarray:
    """Validate a grid to write and return it as uint8."""
    grid = np.asarray(voxels)
    if grid.ndim != 3 or len(set(grid.shape)) != 1 or grid.shape[0] < 1:
        raise ValueError(
            f"voxels has shape {grid.shape}; expected a cubic [R, R, R] grid with R >= 1. "
            "Pass one grid at a time, not a batch.")
    if grid.dtype.kind not in "buif":
        raise ValueError(f"voxels has dtype {grid.dtype}; expected bool or numbers 0/1.")
    if grid.dtype.kind != "b" and not np.isin(grid, (0, 1)).all():
        found = np.unique(grid[~np.isin(grid, (0, 1))])[:5].tolist()
        raise ValueError(
            f"voxels holds values {found} besides 0 and 1; threshold it first, "
            "e.g. (voxels > 0.5).")
    return grid.astype(np.uint8)


def _check_translate(translate: tuple[float, float, float]) -> tuple[float, float, float]:
    try:
        offsets = tuple(float(value) for value in translate)
    except (TypeError, ValueError):
        offsets = ()
    if len(offsets) != 3 or not all(math.isfinite(value) for value in offsets):
        raise ValueError(f"translate must be three finite numbers, got {translate!r}.")
    return offsets


def _check_scale(scale: float) -> float:
    try:
        factor = float(scale)
    except (TypeError, ValueError):
        factor = math.nan
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}.")
    return factor


def _encode_runs(flat: np.ndarray) -> bytes:
    """Run-length encode a flat uint8 0/1 array as binvox (value, count) byte pairs."""
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    lengths = np.diff(np.append(starts, flat.size))
    # Runs longer than 255 are written as several pairs: 255, 255, ..., remainder.
    pieces = (lengths + _MAX_RUN - 1) // _MAX_RUN
    values = np.repeat(flat[starts], pieces)
    counts = np.full(int(pieces.sum()), _MAX_RUN, dtype=np.int64)
    counts[np.cumsum(pieces) - 1] = lengths - _MAX_RUN * (pieces - 1)
    pairs = np.empty(2 * values.size, dtype=np.uint8)
    pairs[0::2] = values
    pairs[1::2] = counts
    return pairs.tobytes()


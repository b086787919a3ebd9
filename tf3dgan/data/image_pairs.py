"""(image, shape) pairs for training an image encoder (3D-VAE-GAN): rendered, saved, loaded, fed.

Where pairs come from:

- :func:`render_pairs`: voxel grids (any loaded dataset) rendered by
  :func:`tf3dgan.data.render.render_voxels` from ``views_per_shape`` viewpoints each;
- :func:`render_mesh_pairs`: meshes rendered directly by
  :func:`tf3dgan.data.mesh_render.render_mesh`, paired with their voxelization;
- :func:`tf3dgan.data.pair_folder.load_pair_folder` (also importable from here): users' own
  pictures and shapes, listed in a folder's ``manifest.csv``.

Viewpoints. View v of shape i under ``seed`` is drawn from a generator seeded by
(seed, i, v) alone: azimuth uniform in [0, 360), elevation uniform in
:data:`ELEVATION_RANGE`, and a key light turned about the up axis by an angle uniform in
:data:`LIGHT_TURN_RANGE` from the renderer's default (which follows the camera) with an
intensity uniform in :data:`LIGHT_INTENSITY_RANGE`. A shape's pictures therefore do not
depend on which other shapes are rendered, how many processes render them, or in what order.

Pairs are stored as one .npz (:func:`save_pairs`, :func:`load_pairs`) and fed to training by
:func:`pair_dataset`, whose batch s is a pure function of (seed, s) like
:func:`tf3dgan.data.pipeline.training_dataset`, so resumed runs see the same batches.
:func:`tf3dgan.data.pair_contact_sheet.contact_sheet` draws some pairs side by side.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from tf3dgan import atomic_files
from tf3dgan import progress as progress_lib
from tf3dgan.data import render, voxelize
from tf3dgan.data.binvox import check_up_axis

ELEVATION_RANGE = (15.0, 45.0)
LIGHT_TURN_RANGE = (-60.0, 60.0)
LIGHT_INTENSITY_RANGE = (0.75, 1.25)
# Shapes rendered per task of a worker process (and per progress update).
_SHAPES_PER_TASK = 16
# Environment variables that size the numerical libraries' thread pools, set to 1 in workers.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
FORMAT = "tf3dgan.image_pairs/1"
_KEYS = ("images", "shape_index", "voxels", "labels", "class_names", "viewpoints",
         "description", "format")


@dataclasses.dataclass(frozen=True)
class PairSet:
    """Pictures and the voxel grids they show.

    Several pictures may show one grid: picture m shows ``voxels[shape_index[m]]``.
    Construction checks that the arrays fit together (integer arrays are converted to int64
    and viewpoints to float32; the pictures and grids must already be uint8).

    Attributes:
        images: uint8 [M, H, W, 3] RGB pictures.
        shape_index: int64 [M], the row of ``voxels`` each picture shows.
        voxels: uint8 [N, R, R, R] grids of 0/1, axes (x, y, z), z up.
        labels: int64 [N], indices into ``class_names``.
        class_names: The classes, in label order.
        viewpoints: float32 [M, 2] (elevation, azimuth) in degrees of each picture's camera;
            NaN for pictures that were not rendered (users' photos).
        description: One line for logs: where the pairs came from.

    Raises:
        ValueError: naming the array, if shapes, dtypes or values do not fit together.
    """

    images: np.ndarray
    shape_index: np.ndarray
    voxels: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    viewpoints: np.ndarray
    description: str

    def __post_init__(self) -> None:
        for name, value in _checked_fields(self).items():
            object.__setattr__(self, name, value)

    @property
    def num_pairs(self) -> int:
        """M, the number of pictures."""
        return int(self.images.shape[0])

    @property
    def num_shapes(self) -> int:
        """N, the number of grids."""
        return int(self.voxels.shape[0])

    @property
    def resolution(self) -> int:
        """R, the grids' edge."""
        return int(self.voxels.shape[1])

    @property
    def image_size(self) -> int:
        """The pictures' height (equal to their width for rendered pairs)."""
        return int(self.images.shape[1])


def _checked_fields(pairs: PairSet) -> dict:
    """The fields of ``pairs`` with converted dtypes; raises ValueError for any misfit."""
    images, voxels = np.asarray(pairs.images), np.asarray(pairs.voxels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 \
            or min(images.shape) < 1:
        raise ValueError(
            f"images must be a non-empty uint8 array [M, H, W, 3], got dtype {images.dtype} and "
            f"shape {images.shape}; convert with np.clip(x, 0, 255).astype(np.uint8).")
    if voxels.dtype != np.uint8 or voxels.ndim != 4 or len(set(voxels.shape[1:])) != 1 \
            or min(voxels.shape) < 1:
        raise ValueError(
            f"voxels must be a non-empty uint8 array [N, R, R, R], got dtype {voxels.dtype} and "
            f"shape {voxels.shape}; convert 0/1 grids with (voxels > 0.5).astype(np.uint8).")
    if voxels.max() > 1:
        raise ValueError(f"voxels must hold 0 or 1, found the value {int(voxels.max())}.")
    num_pairs, num_shapes = images.shape[0], voxels.shape[0]
    shape_index = _integer_array(pairs.shape_index, "shape_index", (num_pairs,))
    if shape_index.min() < 0 or shape_index.max() >= num_shapes:
        raise ValueError(
            f"shape_index must hold rows of voxels, 0 to {num_shapes - 1}, found values from "
            f"{shape_index.min()} to {shape_index.max()}.")
    labels = _integer_array(pairs.labels, "labels", (num_shapes,))
    class_names = tuple(str(name) for name in pairs.class_names)
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ValueError(
            f"labels must index class_names ({len(class_names)} names), found values from "
            f"{labels.min()} to {labels.max()}; pass one class name per label.")
    viewpoints = np.asarray(pairs.viewpoints)
    if viewpoints.shape != (num_pairs, 2) or not np.issubdtype(viewpoints.dtype, np.floating):
        raise ValueError(
            f"viewpoints must be a float array [M, 2] = [{num_pairs}, 2] of (elevation, "
            f"azimuth), got dtype {viewpoints.dtype} and shape {viewpoints.shape}.")
    return {"images": images, "voxels": voxels, "shape_index": shape_index, "labels": labels,
            "class_names": class_names, "viewpoints": viewpoints.astype(np.float32),
            "description": str(pairs.description)}


def _integer_array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of shape {list(shape)}, got dtype "
                         f"{array.dtype} and shape {array.shape}.")
    return array.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Viewpoints and rendering.
# ---------------------------------------------------------------------------------------------


def view_settings(seed: int, shape: int, view: int) -> tuple[float, float, np.ndarray, float]:
    """The camera and light of view ``view`` of shape ``shape`` (see the module docstring).

    Args:
        seed: A non-negative integer.
        shape: The shape's position in the rendered list (row of the voxels, or of the
            mesh list).
        view: The view's number, 0 to views_per_shape - 1.

    Returns:
        (elevation, azimuth, light direction [3], light intensity).
    """
    generator = np.random.default_rng([seed, shape, view])
    elevation, azimuth, turn, intensity = generator.uniform(
        [ELEVATION_RANGE[0], 0.0, LIGHT_TURN_RANGE[0], LIGHT_INTENSITY_RANGE[0]],
        [ELEVATION_RANGE[1], 360.0, LIGHT_TURN_RANGE[1], LIGHT_INTENSITY_RANGE[1]])
    return (float(elevation), float(azimuth), render.key_light_direction(azimuth + turn),
            float(intensity))


def _render_voxel_task(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Worker: render every view of a block of grids. Returns (images, viewpoints)."""
    first, grids, views_per_shape, image_size, seed, threshold = task
    images = np.empty((len(grids) * views_per_shape, image_size, image_size, 3), np.uint8)
    viewpoints = np.empty((len(grids) * views_per_shape, 2), np.float32)
    for offset, grid in enumerate(grids):
        for view in range(views_per_shape):
            elevation, azimuth, light, intensity = view_settings(seed, first + offset, view)
            row = offset * views_per_shape + view
            images[row] = render.render_voxels(
                grid, image_size, threshold, elevation=elevation, azimuth=azimuth,
                light_direction=light, light_intensity=intensity)
            viewpoints[row] = elevation, azimuth
    return images, viewpoints


def render_pairs(voxels: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
                 views_per_shape: int = 4, image_size: int = 64, seed: int = 0,
                 progress: bool = True, workers: int = 1, threshold: float = 0.5,
                 description: str = "") -> PairSet:
    """Render every grid from ``views_per_shape`` seeded viewpoints.

    Args:
        voxels: [N, R, R, R] grids (uint8/bool/float), axes (x, y, z), z up; none empty.
        labels: [N] integer labels, indices into ``class_names``.
        class_names: The classes, in label order.
        views_per_shape: V, pictures per grid, at least 1.
        image_size: Side of the pictures in pixels, at least 8.
        seed: Non-negative integer that fixes every viewpoint and light.
        progress: Show a progress line on stderr.
        workers: Processes that render; 1 renders in this one. The pictures are the same
            for any number.
        threshold: Voxels above this are solid (in the grids and in the pictures).
        description: Where the grids came from, for the PairSet's description.

    Returns:
        A PairSet of N * V pairs, shape-major: picture i * V + v is view v of grid i.

    Raises:
        ValueError: for an argument out of range, grids that are not [N, R, R, R], an empty
            grid, or labels that do not fit.
    """
    grids = np.asarray(voxels)
    if grids.ndim != 4 or len(set(grids.shape[1:])) != 1 or grids.shape[0] < 1:
        raise ValueError(f"voxels must be a non-empty array [N, R, R, R], got shape {grids.shape}.")
    grids = (grids > threshold).astype(np.uint8)
    empty = np.flatnonzero(~grids.reshape(len(grids), -1).any(axis=1))
    if len(empty):
        raise ValueError(
            f"{len(empty)} of the {len(grids)} grids are empty (rows {empty[:10].tolist()}"
            f"{' ...' if len(empty) > 10 else ''}) at threshold {threshold}; drop them first, "
            "e.g. voxels[voxels.reshape(len(voxels), -1).any(axis=1)].")
    views_per_shape = positive_int(views_per_shape, "views_per_shape", "4")
    image_size = render.check_image_size(image_size)
    seed = _seed(seed)
    workers = positive_int(workers, "workers", "1")
    class_names = tuple(str(name) for name in class_names)
    label_array = _check_labels(labels, len(grids), class_names)
    total = len(grids) * views_per_shape
    bar = progress_lib.Progress(f"rendering {total} pictures at {image_size}x{image_size}",
                                total) if progress else None
    tasks = [(first, grids[first:first + _SHAPES_PER_TASK], views_per_shape, image_size, seed,
              0.5) for first in range(0, len(grids), _SHAPES_PER_TASK)]
    images = np.empty((total, image_size, image_size, 3), np.uint8)
    viewpoints = np.empty((total, 2), np.float32)
    row = 0
    for block_images, block_viewpoints in _mapped(_render_voxel_task, tasks, workers):
        images[row:row + len(block_images)] = block_images
        viewpoints[row:row + len(block_images)] = block_viewpoints
        row += len(block_images)
        if bar:
            bar.update(len(block_images))
    if bar:
        bar.finish(f"{total / max(bar.seconds, 1e-9):.0f} pictures/s")
    source = f"{description}: " if description else ""
    return PairSet(
        images=images, shape_index=np.repeat(np.arange(len(grids)), views_per_shape),
        voxels=grids, labels=label_array, class_names=class_names, viewpoints=viewpoints,
        description=(f"{source}{total} renders ({views_per_shape} views of {len(grids)} "
                     f"{grids.shape[1]}^3 grids) at {image_size}x{image_size}, seed {seed}"))


def _render_mesh_task(task: tuple) -> tuple:
    """Worker: voxelize and render one mesh. Returns (position, grid, images, viewpoints,
    reason) with reason None, or (position, None, None, None, reason) for an unusable mesh."""
    from tf3dgan.data import mesh_render

    position, path, resolution, views_per_shape, image_size, seed, fill, up_axis = task
    try:
        mesh = voxelize.load_mesh(path)
        grid = voxelize.voxelize_mesh(mesh, resolution, fill=fill, up_axis=up_axis)
    except voxelize.UnusableShapeError as error:
        return position, None, None, None, error.reason
    images = np.empty((views_per_shape, image_size, image_size, 3), np.uint8)
    viewpoints = np.empty((views_per_shape, 2), np.float32)
    for view in range(views_per_shape):
        elevation, azimuth, light, intensity = view_settings(seed, position, view)
        images[view] = mesh_render.render_mesh(
            mesh, image_size, elevation, azimuth, resolution=resolution, up_axis=up_axis,
            light_direction=light, light_intensity=intensity)
        viewpoints[view] = elevation, azimuth
    return position, grid, images, viewpoints, None


def render_mesh_pairs(mesh_paths: Sequence[str | os.PathLike], labels: Sequence[int] | None = None,
                      class_names: Sequence[str] | None = None, *, resolution: int = 32,
                      views_per_shape: int = 4, image_size: int = 64, seed: int = 0,
                      fill: str = "solid", up_axis: str = "z", progress: bool = True,
                      workers: int = 1) -> PairSet:
    """Render meshes directly and pair each picture with the mesh's voxelization.

    The pictures come from :func:`tf3dgan.data.mesh_render.render_mesh` (the true surface,
    not the voxels), with the viewpoints and lights of :func:`view_settings` keyed on each
    mesh's position in ``mesh_paths``; the grids from
    :func:`tf3dgan.data.voxelize.voxelize_mesh`. Meshes that cannot be voxelized (corrupt,
    no surface) are left out and named in the description and on stderr.

    Args:
        mesh_paths: Mesh files (.off, .obj, .stl, .ply, .glb, ...).
        labels: An integer label per mesh, or None (every mesh in one class).
        class_names: The classes in label order; None with labels=None gives ("unlabelled",).
        resolution: Edge R of the grids.
        views_per_shape: Pictures per mesh, at least 1.
        image_size: Side of the pictures in pixels, at least 8.
        seed: Non-negative integer that fixes every viewpoint and light.
        fill: "solid" or "surface", as for ``voxelize_mesh``.
        up_axis: The meshes' up axis ("x", "y" or "z").
        progress: Show a progress line on stderr.
        workers: Processes that voxelize and render; 1 works in this one.

    Returns:
        A PairSet, shape-major (picture i * V + v is view v of the i-th usable mesh).

    Raises:
        FileNotFoundError: if a listed mesh does not exist.
        ValueError: for bad arguments, labels that do not fit, or if no mesh is usable.
    """
    paths = [os.fspath(path) for path in mesh_paths]
    if not paths:
        raise ValueError("mesh_paths is empty; pass at least one mesh file.")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Mesh file {path!r} does not exist; fix the path or leave "
                                    "it out of mesh_paths.")
    if labels is None:
        labels = np.zeros(len(paths), np.int64)
        class_names = ("unlabelled",) if class_names is None else class_names
    elif class_names is None:
        raise ValueError("class_names is required with labels: one name per label value.")
    class_names = tuple(str(name) for name in class_names)
    label_array = _check_labels(labels, len(paths), class_names)
    voxelize._check_resolution(resolution)
    if fill not in voxelize.FILL_MODES:
        raise ValueError(f"fill must be one of {voxelize.FILL_MODES}, got {fill!r}.")
    check_up_axis(up_axis)
    views_per_shape = positive_int(views_per_shape, "views_per_shape", "4")
    image_size = render.check_image_size(image_size)
    seed = _seed(seed)
    workers = positive_int(workers, "workers", "1")
    bar = progress_lib.Progress(f"rendering and voxelizing {len(paths)} meshes",
                                len(paths)) if progress else None
    tasks = [(position, path, resolution, views_per_shape, image_size, seed, fill, up_axis)
             for position, path in enumerate(paths)]
    kept, dropped = [], []
    for position, grid, images, viewpoints, reason in _mapped(_render_mesh_task, tasks, workers):
        if reason is None:
            kept.append((position, grid, images, viewpoints))
        else:
            dropped.append(f"{paths[position]}: {reason}")
            progress_lib.note(f"left out {paths[position]}: {reason}")
        if bar:
            bar.update()
    if bar:
        bar.finish()
    if not kept:
        raise ValueError(f"None of the {len(paths)} meshes could be voxelized: "
                         f"{'; '.join(dropped[:5])}")
    positions = [position for position, *_ in kept]
    left_out = f"; left out {len(dropped)} unusable: {'; '.join(dropped)}" if dropped else ""
    return PairSet(
        images=np.concatenate([images for _, _, images, _ in kept]),
        shape_index=np.repeat(np.arange(len(kept)), views_per_shape),
        voxels=np.stack([grid for _, grid, _, _ in kept]),
        labels=label_array[positions], class_names=class_names,
        viewpoints=np.concatenate([viewpoints for *_, viewpoints in kept]),
        description=(f"{len(kept) * views_per_shape} mesh renders ({views_per_shape} views of "
                     f"{len(kept)} meshes, voxelized at {resolution}^3) at "
                     f"{image_size}x{image_size}, seed {seed}{left_out}"))


def _mapped(function, tasks: list, workers: int) -> Iterator:
    """``function`` over ``tasks`` in order, in this process or in ``workers`` processes."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(function, tasks)
        return
    # "spawn": a forked child would inherit this process's TensorFlow threads and locks.
    # The workers import only NumPy, SciPy, trimesh and Pillow (TensorFlow is imported by
    # pair_dataset alone), so they start in about a second. One BLAS thread each: the
    # renderer's small matrix products gain nothing from more, and with the default BLAS
    # threads two workers took 14.1 s for what took 8.8 s with one thread each.
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        pool = concurrent.futures.ProcessPoolExecutor(
            min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"))
        # map submits every task now, which starts the workers with this environment.
        results = pool.map(function, tasks)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    with pool:
        try:
            yield from results
        except concurrent.futures.process.BrokenProcessPool as error:
            raise RuntimeError("A rendering process died (out of memory?); run again with "
                               "fewer workers.") from error


def _check_labels(labels, count: int, class_names: tuple[str, ...]) -> np.ndarray:
    """Labels as int64 [count], each an index into class_names; checked before any work."""
    array = np.asarray(labels)
    if array.shape != (count,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be {count} integers, one per shape, got dtype "
                         f"{array.dtype} and shape {array.shape}.")
    if count and (array.min() < 0 or array.max() >= len(class_names)):
        raise ValueError(
            f"labels must index class_names ({len(class_names)} names), found values from "
            f"{array.min()} to {array.max()}; pass one class name per label.")
    return array.astype(np.int64)


def positive_int(value, name: str, example: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}; e.g. {example}.")
    return int(value)


def _seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    return int(seed)


# ---------------------------------------------------------------------------------------------
# Saving and loading.
# ---------------------------------------------------------------------------------------------


def save_pairs(pairs: PairSet, path: str | os.PathLike) -> None:
    """Write pairs to one compressed .npz, atomically.

    The file is written beside its destination under a temporary name and moved into place
    with ``os.replace``: an interrupted write leaves no partial file, and an existing file
    is replaced only by a complete one. Missing parent folders are created.

    Args:
        pairs: The pairs.
        path: Destination file (conventionally ending in .npz).

    Raises:
        TypeError: if ``pairs`` is not a PairSet.
        OSError: if the folder cannot be written.
    """
    if not isinstance(pairs, PairSet):
        raise TypeError(f"pairs must be a PairSet, got {type(pairs).__name__}.")
    with atomic_files.atomic_output(path) as handle:
        np.savez_compressed(
            handle, images=pairs.images, shape_index=pairs.shape_index, voxels=pairs.voxels,
            labels=pairs.labels, class_names=np.array(pairs.class_names, dtype=str),
            viewpoints=pairs.viewpoints, description=np.array(pairs.description),
            format=np.array(FORMAT))


def load_pairs(path: str | os.PathLike) -> PairSet:
    """Read pairs written by :func:`save_pairs`.

    Args:
        path: The .npz file.

    Returns:
        The PairSet, checked as on construction.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file, if it is not an .npz, lacks one of the arrays, or its
            arrays do not fit together (the message says which).
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(
            f"Pairs file {source!r} does not exist; make one with python -m pipelines.render_pairs.")
    unreadable = (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error)
    try:
        archive = np.load(source, allow_pickle=False)
    except unreadable as error:
        raise ValueError(f"{source!r} is not a readable .npz file ({type(error).__name__}: "
                         f"{error}); write it again with save_pairs.") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{source!r} holds a single array (.npy), not the .npz of arrays that "
                         "save_pairs writes; make it with python -m pipelines.render_pairs.")
    with archive:
        missing = [key for key in _KEYS if key not in archive.files]
        if missing:
            raise ValueError(
                f"{source!r} lacks the arrays {missing} (it has {sorted(archive.files)}); it "
                "was not written by save_pairs. Make it with python -m pipelines.render_pairs.")
        try:
            arrays = {key: archive[key] for key in _KEYS}
        except unreadable as error:
            raise ValueError(f"{source!r} is damaged ({type(error).__name__}: {error}); write "
                             "it again with save_pairs.") from error
    if str(arrays["format"]) != FORMAT:
        raise ValueError(f"{source!r} has format {str(arrays['format'])!r}, expected {FORMAT!r}; "
                         "write it again with this version.")
    try:
        return PairSet(images=arrays["images"], shape_index=arrays["shape_index"],
                       voxels=arrays["voxels"], labels=arrays["labels"],
                       class_names=tuple(str(name) for name in arrays["class_names"]),
                       viewpoints=arrays["viewpoints"], description=str(arrays["description"]))
    except ValueError as error:
        raise ValueError(f"{source!r}: {error}") from error


# ---------------------------------------------------------------------------------------------
# Training stream.
# ---------------------------------------------------------------------------------------------


def pair_dataset(pairs: PairSet, global_batch_size: int, seed: int, start_step: int = 0, *,
                 resolution: int | None = None):
    """Endless dataset of (images, voxels) batches, starting at batch ``start_step``.

    Batch s holds the pairs :func:`tf3dgan.data.pipeline.batch_indices` (s, M, B, seed)
    picks: one seeded permutation of the M pairs per epoch, so a resumed run sees the
    batches an uninterrupted run would have seen.

    Args:
        pairs: The pairs.
        global_batch_size: B, split across replicas by the strategy.
        seed: Seeds the order.
        start_step: Batches already consumed (for resuming), >= 0.
        resolution: The model's grid edge, a multiple of the pairs' R: grids are upsampled
            by nearest neighbour in the pipeline (32 -> 64). None keeps R.

    Returns:
        A ``tf.data.Dataset`` of (images float32 [B, H, W, 3] in [0, 1], voxels float32
        [B, R, R, R] of 0/1), auto-sharded by DATA, prefetched.

    Raises:
        ValueError: if there are fewer pairs than one batch, an argument is out of range, or
            ``resolution`` is not a multiple of the pairs' R.
    """
    import tensorflow as tf

    from tf3dgan.data import pipeline

    if not isinstance(pairs, PairSet):
        raise TypeError(f"pairs must be a PairSet, got {type(pairs).__name__}.")
    global_batch_size = positive_int(global_batch_size, "global_batch_size", "32")
    if not isinstance(start_step, (int, np.integer)) or start_step < 0:
        raise ValueError(f"start_step must be an integer >= 0, got {start_step!r}.")
    if pairs.num_pairs < global_batch_size:
        raise ValueError(
            f"There are {pairs.num_pairs} (image, shape) pairs, fewer than one batch of "
            f"{global_batch_size}. Render more views (--views_per_shape), add pairs, or use a "
            "smaller --batch_size.")
    factor = pipeline.check_upsampling(pairs.resolution, resolution or pairs.resolution)
    images = tf.constant(pairs.images)
    grids = tf.constant(pairs.voxels)
    shape_index = tf.constant(pairs.shape_index)
    num_pairs = pairs.num_pairs

    def load_batch(step):
        indices = pipeline.batch_indices(step, num_pairs, global_batch_size, seed)
        batch_images = tf.cast(tf.gather(images, indices), tf.float32) / 255.0
        batch_voxels = tf.gather(grids, tf.gather(shape_index, indices))
        batch_voxels = tf.cast(pipeline.upsample(batch_voxels, factor), tf.float32)
        return batch_images, batch_voxels

    dataset = tf.data.Dataset.range(int(start_step), np.iinfo(np.int64).max)
    dataset = dataset.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Each worker builds the same stream; DATA sharding splits every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


# Users' own pairs; at the end because that module builds on PairSet.
from tf3dgan.data.pair_folder import MANIFEST_NAME, load_pair_folder  # noqa: F401

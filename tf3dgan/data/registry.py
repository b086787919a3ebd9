"""Maps a dataset name (`--data NAME`) to the function that loads it.

Names:
    synthetic        the embedded generated shapes (no files).
    npz              an .npz with X_<split> (and y_<split>) arrays; --data_path FILE.
    modelnet10       the same, with ModelNet10's class names for the integer labels.
    cache            a cache made by `python -m pipelines.prepare`; --data_path DIR.
    modelnet         a ModelNet10/40 folder or .zip (CLASS/train|test/*.off),
    shapenet_binvox  a ShapeNet voxel folder (SYNSET/MODEL_ID/.../*.binvox),
    folder           a flat folder of one class (meshes or .binvox):
                     these three read the cache that `python -m pipelines.prepare` made
                     beside --data_path (see tf3dgan.data.cache.default_cache_dir); meshes are
                     never voxelized at a training start. Without one, the error gives the
                     exact command that makes it.
    tfds             a prepared TensorFlow Datasets dataset, --data_path NAME[/CONFIG]
                     (modelnet10/32, modelnet40/64, tf3dgan_synthetic/32; see
                     tf3dgan.data.tfds), read from $TFDS_DATA_DIR or ~/tensorflow_datasets.
                     It is never built here: without it, the error gives the command.

Grids come back at the data's own resolution, which must divide the model's; the tf.data
pipeline upsamples them (`tf3dgan.data.pipeline.training_dataset(resolution=...)`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from tf3dgan.data import arrays, cache, layouts, pipeline, synthetic


@dataclasses.dataclass(frozen=True)
class VoxelDataset:
    """A loaded dataset: grids in {0, 1}, their labels and the class names.

    Attributes:
        voxels: uint8 [N, S, S, S], axes (x, y, z), z up, at the data's resolution S.
        labels: int64 [N], indices into ``class_names``.
        class_names: The dataset's classes, in label order.
        description: One line for the log: source, split, counts, what was dropped.
        held_out_voxels: The grids kept away from the GAN for checkpoint selection
            (`tf3dgan.data.holdout`), or None when nothing is held out.
    """

    voxels: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    description: str
    held_out_voxels: np.ndarray | None = None

    @property
    def resolution(self) -> int:
        """The edge S of the grids."""
        return int(self.voxels.shape[1])


def _load_synthetic(data_config, resolution: int, seed: int) -> VoxelDataset:
    voxels, labels = synthetic.make_synthetic_dataset(
        data_config.synthetic_shapes_per_class, resolution=resolution, seed=seed,
        classes=data_config.class_list or None)
    names = data_config.class_list or synthetic.SYNTHETIC_CLASSES
    return VoxelDataset(voxels, labels, tuple(names),
                        f"synthetic: {len(voxels)} shapes of {', '.join(names)} at {resolution}^3")


def _resolution_note(data_resolution: int, resolution: int) -> str:
    pipeline.check_upsampling(data_resolution, resolution)
    if data_resolution == resolution:
        return f"at {resolution}^3"
    return f"at {data_resolution}^3 (upsampled to {resolution}^3 in the pipeline)"


def _load_npz(data_config, resolution: int, seed: int, class_names=None) -> VoxelDataset:
    del seed  # the file fixes the data
    if not data_config.data_path:
        raise ValueError(f"--data {data_config.data} needs --data_path pointing to an .npz file.")
    voxels, labels, names, dropped = arrays.load_npz(
        data_config.data_path, split=data_config.split, classes=data_config.class_list,
        class_names=class_names)
    kept = data_config.class_list or names
    return VoxelDataset(voxels, labels, tuple(names),
                        f"{data_config.data_path} [{data_config.split}]: {len(voxels)} shapes "
                        f"of {', '.join(kept)} {_resolution_note(voxels.shape[1], resolution)}; "
                        f"{dropped} empty grids dropped")


def _load_modelnet10_npz(data_config, resolution: int, seed: int) -> VoxelDataset:
    return _load_npz(data_config, resolution, seed, class_names=arrays.MODELNET10_CLASSES)


def _from_cache(directory: str, data_config, resolution: int) -> VoxelDataset:
    data = cache.read_cache(directory, data_config.split, data_config.class_list)
    kept = data_config.class_list or data.class_names
    return VoxelDataset(
        data.voxels, data.labels, data.class_names,
        f"{directory} [{data_config.split}]: {len(data.voxels)} shapes of {', '.join(kept)} "
        f"{_resolution_note(data.voxels.shape[1], resolution)}; {data.dropped} files dropped "
        f"while preparing (reasons in {os.path.join(directory, cache.MANIFEST_NAME)})")


def _load_cache(data_config, resolution: int, seed: int) -> VoxelDataset:
    del seed
    if not data_config.data_path:
        raise ValueError(
            "--data cache needs --data_path with the directory that python -m pipelines.prepare "
            "wrote (its --output).")
    return _from_cache(data_config.data_path, data_config, resolution)


def _prepared_loader(layout: str) -> Callable[..., VoxelDataset]:
    """A loader for a layout of files: it reads the cache prepared beside the input."""

    def load(data_config, resolution: int, seed: int) -> VoxelDataset:
        del seed
        path = data_config.data_path
        if not path:
            raise ValueError(f"--data {layout} needs --data_path with the dataset's folder or .zip.")
        if cache.is_cache(path):
            return _from_cache(path, data_config, resolution)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Dataset {path!r} does not exist. Pass --data_path with the folder or .zip.")
        directory = cache.default_cache_dir(path, resolution)
        if not cache.is_cache(directory):
            command = (f"python -m pipelines.prepare --data {layout} --input {path} --output "
                       f"{directory} --resolution {resolution}")
            half = cache.default_cache_dir(path, resolution // 2)
            alternative = (f" A {resolution // 2}^3 cache exists: --data cache --data_path {half} "
                           f"trains on it, upsampled." if resolution % 2 == 0
                           and cache.is_cache(half) else "")
            raise FileNotFoundError(
                f"--data {layout} trains on voxel grids prepared once from {path!r}, and there "
                f"is no prepared cache at {directory!r}. Prepare it first (once; it is resumable):"
                f"\n  {command}\nthen run this command again.{alternative}")
        manifest = cache.read_manifest(directory)
        if manifest["settings"].get("layout") != layout:
            raise ValueError(
                f"The cache {directory!r} was prepared as --data {manifest['settings'].get('layout')}, "
                f"not {layout}; pass that --data, or --data cache --data_path {directory}.")
        return _from_cache(directory, data_config, resolution)

    return load


def _load_tfds(data_config, resolution: int, seed: int) -> VoxelDataset:
    del seed
    # Imported here: tensorflow_datasets is only needed by this dataset.
    from tf3dgan.data.tfds import prepared

    data = prepared.load_split(data_config.data_path, data_config.split, data_config.class_list)
    kept = data_config.class_list or data.class_names
    return VoxelDataset(
        data.voxels, data.labels, data.class_names,
        f"TFDS {data.full_name} in {data.data_dir} [{data_config.split}]: {len(data.voxels)} "
        f"shapes of {', '.join(kept)} {_resolution_note(data.voxels.shape[1], resolution)}; "
        f"{data.skipped} files skipped when it was built (info.metadata['skipped'])")


DATASETS: dict[str, Callable[..., VoxelDataset]] = {
    "synthetic": _load_synthetic,
    "npz": _load_npz,
    "modelnet10": _load_modelnet10_npz,
    "cache": _load_cache,
    "tfds": _load_tfds,
    **{layout: _prepared_loader(layout) for layout in layouts.LAYOUTS},
}


def load_dataset(data_config, resolution: int, seed: int = 0) -> VoxelDataset:
    """Loads the dataset named by `data_config.data` for a model of `resolution`.

    Args:
        data_config: A `tf3dgan.config.DataConfig` (data, data_path, classes, split).
        resolution: The model's grid edge; the data's must divide it.
        seed: Seeds generated data (synthetic).

    Returns:
        A `VoxelDataset` at the data's own resolution.

    Raises:
        ValueError: for an unknown dataset name, unusable data, or a data resolution that
            does not divide `resolution`.
        FileNotFoundError: if the data path does not exist, or a layout of files has no
            prepared cache (the message gives the `python -m pipelines.prepare` command).
    """
    if data_config.data not in DATASETS:
        raise ValueError(
            f"Unknown dataset {data_config.data!r}. Expected one of {', '.join(sorted(DATASETS))}.")
    return DATASETS[data_config.data](data_config, resolution, seed)

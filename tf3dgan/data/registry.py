"""Maps a dataset name (`--data NAME`) to the function that loads it."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from tf3dgan.data import arrays, synthetic


@dataclasses.dataclass(frozen=True)
class VoxelDataset:
    """A loaded dataset: grids in {0, 1}, their labels and the class names."""

    voxels: np.ndarray  # uint8 [N, R, R, R], axes (x, y, z), z up
    labels: np.ndarray  # int64 [N]
    class_names: tuple[str, ...]
    description: str


def _load_synthetic(data_config, resolution: int, seed: int) -> VoxelDataset:
    voxels, labels = synthetic.make_synthetic_dataset(
        data_config.synthetic_shapes_per_class, resolution=resolution, seed=seed,
        classes=data_config.class_list or None)
    names = data_config.class_list or synthetic.SYNTHETIC_CLASSES
    return VoxelDataset(voxels, labels, tuple(names),
                        f"synthetic: {len(voxels)} shapes of {', '.join(names)} at {resolution}^3")


def _load_npz(data_config, resolution: int, seed: int, class_names=None) -> VoxelDataset:
    del seed  # the file fixes the data
    if not data_config.data_path:
        raise ValueError(f"--data {data_config.data} needs --data_path pointing to an .npz file.")
    voxels, labels, names = arrays.load_npz(
        data_config.data_path, split=data_config.split, classes=data_config.class_list,
        class_names=class_names)
    voxels = arrays.resize_grids(voxels, resolution)
    kept = data_config.class_list or names
    return VoxelDataset(voxels, labels, tuple(names),
                        f"{data_config.data_path} [{data_config.split}]: {len(voxels)} shapes "
                        f"of {', '.join(kept)} at {resolution}^3")


def _load_modelnet10_npz(data_config, resolution: int, seed: int) -> VoxelDataset:
    return _load_npz(data_config, resolution, seed, class_names=arrays.MODELNET10_CLASSES)


DATASETS: dict[str, Callable[..., VoxelDataset]] = {
    "synthetic": _load_synthetic,
    "npz": _load_npz,
    "modelnet10": _load_modelnet10_npz,
}


def load_dataset(data_config, resolution: int, seed: int = 0) -> VoxelDataset:
    """Loads the dataset named by `data_config.data` at the model's resolution.

    Raises:
        ValueError: for an unknown dataset name or unusable data.
        FileNotFoundError: if the data path does not exist.
    """
    if data_config.data not in DATASETS:
        raise ValueError(
            f"Unknown dataset {data_config.data!r}. Expected one of {', '.join(sorted(DATASETS))}.")
    return DATASETS[data_config.data](data_config, resolution, seed)

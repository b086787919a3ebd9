"""Files for generated shapes: meshes, grids, pictures and a JSON record.

For each shape `write_shape` writes, under one stem:

    STEM.npy        float32 [R, R, R]: the generator's occupancy probabilities, untouched
    STEM.binvox     voxels > threshold (after the optional clean-up), binvox's y-up frame
                    (`tf3dgan.data.binvox.write_binvox`; `read_binvox` gives the grid back)
    STEM.<format>   the marching-cubes mesh (`tf3dgan.mesh`), grid units, z up (GLB: y up)
    STEM.png        a render of the cleaned grid

A grid with nothing above the threshold gets no mesh; its record says why. `write_samples`
does this for one sample per seed and adds `samples.png` (all of them) and `samples.json`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path

import numpy as np

from tf3dgan import atomic_files, metrics
from tf3dgan import mesh as mesh_lib
from tf3dgan.data import binvox, render

logger = logging.getLogger(__name__)

RECORD_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ShapeOptions:
    """How shapes become files.

    Attributes:
        threshold: Occupancy threshold in (0, 1).
        mesh_format: "obj", "stl", "ply" or "glb".
        largest_component: Keep only the largest connected component (`tf3dgan.mesh`).
        component_distance: Neighbour distance of that clean-up, in voxels.
        smooth_iterations: Taubin smoothing passes of the mesh (0: none).
        image_size: Pixels per side of each shape's render.
        tile_size: Pixels per side of each tile of the combined pictures.
    """

    threshold: float = 0.5
    mesh_format: str = "obj"
    largest_component: bool = False
    component_distance: float = mesh_lib.COMPONENT_DISTANCE
    smooth_iterations: int = 0
    image_size: int = 256
    tile_size: int = 128

    def __post_init__(self) -> None:
        mesh_lib.check_threshold(self.threshold)
        object.__setattr__(self, "mesh_format", mesh_lib.check_format(self.mesh_format))
        if isinstance(self.smooth_iterations, bool) or not isinstance(self.smooth_iterations, int) \
                or self.smooth_iterations < 0:
            raise ValueError(f"smooth_iterations must be an integer >= 0, received {self.smooth_iterations!r}.")
        if not (isinstance(self.component_distance, (int, float)) and self.component_distance >= 1):
            raise ValueError(
                f"component_distance must be a number >= 1 (voxels), received {self.component_distance!r}.")

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def clean(voxels: np.ndarray, options: ShapeOptions) -> np.ndarray:
    """The occupancies with every voxel outside the largest component zeroed (if asked).

    Args:
        voxels: float [R, R, R].
        options: The options (`largest_component`, `component_distance`, `threshold`).

    Returns:
        float32 [R, R, R]; `voxels` itself when no clean-up is asked or nothing is occupied.
    """
    grid = np.asarray(voxels, dtype=np.float32)
    occupied = grid > options.threshold
    if not options.largest_component or not occupied.any():
        return grid
    keep = mesh_lib.keep_largest_component(occupied, options.component_distance)
    return np.where(keep, grid, 0.0).astype(np.float32)


def write_shape(voxels, directory: str | os.PathLike, stem: str, options: ShapeOptions) -> dict:
    """Writes one shape's .npy, .binvox, mesh and .png (see the module docstring).

    Args:
        voxels: float [R, R, R] occupancies in [0, 1].
        directory: Output folder (created).
        stem: File name without extension.
        options: `ShapeOptions`.

    Returns:
        A JSON-serializable record: file names (relative to `directory`), occupied voxel
        count, largest occupancy, mesh size, or `mesh_skipped` with the reason.

    Raises:
        ValueError: if `voxels` is not one cubic grid.
    """
    grid = np.asarray(voxels, dtype=np.float32)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"voxels must be one cubic grid [R, R, R], received shape {grid.shape}.")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    resolution = grid.shape[0]
    cleaned = clean(grid, options)
    occupied = cleaned > options.threshold
    files = {"npy": f"{stem}.npy", "binvox": f"{stem}.binvox", "png": f"{stem}.png"}
    np.save(folder / files["npy"], grid)
    # binvox files from our writer carry the grid's own placement: translate 0, scale R.
    binvox.write_binvox(folder / files["binvox"], occupied.astype(np.uint8), scale=float(resolution))
    render.save_png(render.render_voxels(cleaned, image_size=options.image_size,
                                         threshold=options.threshold), folder / files["png"])
    record = {"files": files, "occupied_voxels": int(occupied.sum()),
              "max_occupancy": float(grid.max()), "removed_by_clean_up": int((grid > options.threshold).sum()
                                                                             - occupied.sum())}
    try:
        surface = mesh_lib.voxels_to_mesh(cleaned, options.threshold,
                                          smooth_iterations=options.smooth_iterations)
    except ValueError as error:  # nothing above the threshold
        record["mesh_skipped"] = str(error)
        logger.warning("%s: no mesh: %s", stem, error)
        return record
    files["mesh"] = f"{stem}.{options.mesh_format}"
    mesh_lib.save_mesh(surface, folder / files["mesh"], resolution=resolution, file_format=options.mesh_format)
    record["mesh"] = {"vertices": len(surface.vertices), "faces": len(surface.faces),
                      "watertight": bool(surface.is_watertight),
                      "up_axis": mesh_lib.FORMAT_UP_AXES[options.mesh_format]}
    return record


def write_picture(voxels, path: str | os.PathLike, options: ShapeOptions, *, columns: int | None = None,
                  labels=None, clean_up: bool = True) -> None:
    """Renders a batch [N, R, R, R] as one tiled PNG (after the clean-up if `clean_up`)."""
    batch = np.asarray(voxels, dtype=np.float32)
    if clean_up:
        batch = np.stack([clean(grid, options) for grid in batch])
    render.save_png(render.render_grid(batch, columns=columns, image_size=options.tile_size,
                                       threshold=options.threshold, labels=labels), path)


def write_record(path: str | os.PathLike, record: dict) -> Path:
    """Writes a JSON record (sorted keys, NumPy values converted) atomically."""
    return atomic_files.write_json(path, {"record_version": RECORD_VERSION, **record},
                                   sort_keys=True, default=_json_default)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def sample_seeds(num: int, seed: int) -> list[int]:
    """Seeds seed, seed + 1, ..., seed + num - 1.

    Raises:
        ValueError: if num < 1.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive integer, received {num!r}.")
    return [int(seed) + offset for offset in range(num)]


def write_samples(source, seeds, directory: str | os.PathLike, options: ShapeOptions) -> dict:
    """Draws one sample per seed from `source` and writes every file (module docstring).

    Args:
        source: A `tf3dgan.model_source.ModelSource`.
        seeds: Integer seeds; sample i is `seed_<seeds[i]>.*`.
        directory: Output folder (created).
        options: `ShapeOptions`.

    Returns:
        The record written to `samples.json`: model identity, prior, options, and per
        sample its seed, z and files.

    Raises:
        ValueError: for bad seeds.
    """
    folder = Path(directory)
    z, voxels = source.sample(seeds)
    # Of the raw samples, before any clean-up: what the model itself makes.
    stray = metrics.stray_voxel_shares(voxels, options.threshold)
    samples = []
    for seed, latent, grid, share in zip(seeds, z, voxels, stray):
        record = write_shape(grid, folder, f"seed_{int(seed)}", options)
        samples.append({"seed": int(seed), "z": latent,
                        "stray_voxels": None if np.isnan(share) else float(share), **record})
    write_picture(voxels, folder / "samples.png", options,
                  columns=math.ceil(math.sqrt(len(voxels))), labels=[f"seed {int(s)}" for s in seeds])
    record = {"tool": "sample", "model": source.identity, "prior": source.prior,
              "seeds": [int(seed) for seed in seeds], "options": options.describe(),
              "grid_image": "samples.png", "samples": samples,
              "stray_voxels": metrics.stray_voxel_fraction(voxels, options.threshold),
              "notes": {"npy": "occupancy probabilities G(z), untouched",
                        "stray_voxels": "share of the raw sample's voxels above the threshold outside its "
                                        "largest 26-connected component (mean over non-empty samples at "
                                        "the top level)",
                        "binvox, mesh, png": "voxels > threshold after the optional clean-up"}}
    write_record(folder / "samples.json", record)
    return record

"""Shapes of the training split held away from the GAN, to choose its checkpoint on.

Choosing a checkpoint by cross-validation on the shapes the GAN trained on could reward
a discriminator that has memorized them (on ModelNet10 two runs' best-CV checkpoints
scored low on test; README, "Recognition"). With `--holdout_fraction F` a
training run keeps a seeded fraction F of the training split's distinct grids away from
the GAN; `--select_checkpoint` then fits the classifier on the seen shapes and scores it
on the held-out ones, which the GAN never saw. No labels are used to choose them.

A grid is identified by a hash of its occupancy, not by its position in the split: the
benchmark finds the same shapes whatever order or filter its loader applies, and every
bit-identical copy of a held-out grid is held out with it (ModelNet has such copies), so
no held-out shape reaches the GAN under another index.

The run records the hashes in workdir/heldout.npz.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from tf3dgan.atomic_files import atomic_output

HOLDOUT_FILE = "heldout.npz"


@dataclasses.dataclass(frozen=True)
class Holdout:
    """The held-out grids of a run.

    Attributes:
        hashes: Sorted occupancy hashes (`grid_hashes`) of the held-out distinct grids.
        fraction: The fraction of distinct grids asked for.
        seed: The seed that chose them.
    """

    hashes: np.ndarray
    fraction: float
    seed: int

    def mask(self, voxels: np.ndarray) -> np.ndarray:
        """bool [N]: which of `voxels` are held-out grids (or copies of one)."""
        return np.isin(grid_hashes(voxels), self.hashes)


def grid_hashes(voxels: np.ndarray) -> np.ndarray:
    """The sha1 of each grid's occupancy (value > 0.5) and edge, as hex strings [N]."""
    voxels = np.asarray(voxels)
    occupied = voxels.reshape(len(voxels), -1) > 0.5
    edge = f"{voxels.shape[1:]}".encode()
    return np.array([hashlib.sha1(edge + np.packbits(row).tobytes()).hexdigest() for row in occupied],
                    dtype="U40")


def choose_holdout(voxels: np.ndarray, fraction: float, seed: int) -> Holdout:
    """Holds out round(fraction x distinct grids) of `voxels`' distinct grids, chosen by `seed`.

    Raises:
        ValueError: if the fraction is outside (0, 1), or leaves no grid on either side.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), received {fraction!r}.")
    distinct = np.unique(grid_hashes(voxels))
    count = int(round(fraction * len(distinct)))
    if not 0 < count < len(distinct):
        raise ValueError(
            f"holdout_fraction={fraction!r} of {len(distinct)} distinct grids holds out {count}, "
            "which leaves one side empty; pass a fraction that holds out at least one grid and "
            "keeps at least one.")
    chosen = np.random.default_rng(seed).choice(len(distinct), size=count, replace=False)
    return Holdout(hashes=np.sort(distinct[chosen]), fraction=float(fraction), seed=int(seed))


def save_holdout(holdout: Holdout, path: str | Path) -> Path:
    """Writes the holdout atomically to `path` (an .npz)."""
    with atomic_output(path) as handle:
        np.savez(handle, hashes=holdout.hashes, fraction=holdout.fraction, seed=holdout.seed)
    return Path(path)


def load_holdout(path: str | Path) -> Holdout:
    """Reads a holdout written by `save_holdout`.

    Raises:
        ValueError: if the file is not one.
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            hashes = stored["hashes"].astype("U40")
            return Holdout(hashes=hashes, fraction=float(stored["fraction"]), seed=int(stored["seed"]))
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"{path} is not a tf3dgan holdout file ({error}); it is written by a training run "
            "with --holdout_fraction. Restore it from the run, or evaluate without it "
            "(remove it to choose by CV on the training split).") from error

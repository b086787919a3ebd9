"""Quarter turns of voxel grids about the up (z) axis, one per grid, differentiable.

Used by the training pipeline's `--augment_rotate` and by the discriminator's
rotation-prediction task (`--rotation_head`); grids are [B, R, R, R] with axes
(x, y, z), z up, as everywhere in the project.
"""

from __future__ import annotations

import tensorflow as tf

QUARTER_TURNS = 4  # 0, 90, 180 and 270 degrees


def turn_about_z(grids: tf.Tensor, turns: tf.Tensor) -> tf.Tensor:
    """Turns grid i by turns[i] quarter turns, as ``np.rot90(grid, turns[i], axes=(0, 1))``.

    Built from a transpose and mirrors selected per grid, so gradients flow to
    the grids (the generator's, in the rotation task).

    Args:
        grids: [B, R, R, R] tensor, axes (x, y, z).
        turns: int32 [B], each in 0..3.

    Returns:
        The turned grids, same shape and dtype.
    """
    swap, mirror_x, mirror_y = turn_as_swap_and_mirrors(turns)
    return swap_and_mirror(grids, swap, mirror_x, mirror_y)


def turn_as_swap_and_mirrors(turns: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """rot90 by k about z = swap x and y when k is odd, then mirror x when k is 1 or 2
    and y when k is 2 or 3: three bool [B] masks (swap, mirror_x, mirror_y)."""
    return (tf.equal(turns % 2, 1),
            tf.logical_or(tf.equal(turns, 1), tf.equal(turns, 2)),
            turns >= 2)


def swap_and_mirror(grids: tf.Tensor, swap: tf.Tensor, mirror_x: tf.Tensor,
                    mirror_y: tf.Tensor) -> tf.Tensor:
    """Per grid: swap x and y where `swap`, then mirror x where `mirror_x`, then y where `mirror_y`."""

    def where(condition, transformed, original):
        return tf.where(condition[:, None, None, None], transformed, original)

    grids = where(swap, tf.transpose(grids, [0, 2, 1, 3]), grids)
    grids = where(mirror_x, tf.reverse(grids, [1]), grids)
    return where(mirror_y, tf.reverse(grids, [2]), grids)

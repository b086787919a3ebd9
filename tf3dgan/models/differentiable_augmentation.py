"""Differentiable augmentation of the grids D sees (DiffAugment, Zhao et al. 2020, in 3D).

On a small dataset D memorizes the real grids and its gradient stops telling G
anything useful. Augmenting *both* the real grids and G's samples, with the same
random distribution and differentiably (so G's gradient flows through the
augmentation), keeps D from memorizing without teaching G to make augmented
shapes: D only ever compares augmented reals with augmented fakes. It is applied
inside the training step only, never at sampling time or in an exported
signature.

The operations, each drawn per example:
    translate  an integer shift of up to `resolution // 8` voxels along each axis,
               zeros shifted in (a gather: exact, and differentiable in the values);
    flip       mirror in x and in y, each with probability 1/2 (the up axis z is kept);
    cutout     zero a cube of edge `resolution // 4` at a uniformly drawn place.

The draws come from a stateless seed for the whole global batch, and each
replica takes its slice, so one and two replicas augment the same way.
"""

from __future__ import annotations

import tensorflow as tf

from tf3dgan.config import DIFF_AUGMENT_OPERATIONS

OPERATIONS = DIFF_AUGMENT_OPERATIONS


def _translate(grids, shifts):
    """grids [B, R, R, R] moved by integer `shifts` [B, 3], zeros where nothing moves in."""
    resolution = tf.shape(grids)[1]
    positions = tf.range(resolution)
    for axis in range(3):
        source = positions[None, :] - shifts[:, axis:axis + 1]  # [B, R]
        inside = (source >= 0) & (source < resolution)
        moved = tf.gather(grids, tf.clip_by_value(source, 0, resolution - 1), axis=axis + 1, batch_dims=1)
        mask_shape = [-1, 1, 1, 1]
        mask_shape[axis + 1] = resolution
        grids = moved * tf.reshape(tf.cast(inside, grids.dtype), tf.stack(mask_shape))
    return grids


def _flip(grids, flips):
    """grids mirrored in x where flips[:, 0] and in y where flips[:, 1]."""
    for axis in range(2):
        chosen = tf.reshape(flips[:, axis], [-1, 1, 1, 1])
        grids = tf.where(chosen, tf.reverse(grids, axis=[axis + 1]), grids)
    return grids


def _cutout(grids, corners, size: int):
    """grids with the cube [corner, corner + size) of each example set to 0."""
    resolution = tf.shape(grids)[1]
    positions = tf.range(resolution)
    covered = tf.ones_like(grids, dtype=tf.bool)
    for axis in range(3):
        start = corners[:, axis:axis + 1]
        inside = (positions[None, :] >= start) & (positions[None, :] < start + size)  # [B, R]
        shape = [-1, 1, 1, 1]
        shape[axis + 1] = resolution
        covered &= tf.reshape(inside, tf.stack(shape))
    return grids * tf.cast(~covered, grids.dtype)


def augment(grids, operations: tuple[str, ...], seed, replica_start, global_batch):
    """Augments this replica's `grids` [B, R, R, R] (a static R) with `operations`.

    Args:
        grids: float [local batch, R, R, R].
        operations: A tuple from `tf3dgan.config.parse_diff_augment`; () returns `grids`
            unchanged.
        seed: int64 [2], the stateless seed of this batch's draws.
        replica_start: Index of this replica's first example in the global batch.
        global_batch: The global batch size (the draws are made for all of it).

    Returns:
        The augmented grids, same shape and dtype; differentiable in `grids`.
    """
    if not operations:
        return grids
    resolution = int(grids.shape[1])
    local_batch = tf.shape(grids)[0]

    def draw(index, shape, low, high):
        # One stateless draw per operation, for the whole global batch; this replica's slice.
        values = tf.random.stateless_uniform(
            tf.concat([[global_batch], shape], 0), seed=tf.stack([seed[0], seed[1] * 8 + index]),
            minval=low, maxval=high, dtype=tf.int32)
        return values[replica_start:replica_start + local_batch]

    if "translate" in operations:
        limit = max(resolution // 8, 1)
        grids = _translate(grids, draw(0, [3], -limit, limit + 1))
    if "flip" in operations:
        grids = _flip(grids, draw(1, [2], 0, 2) > 0)
    if "cutout" in operations:
        size = max(resolution // 4, 1)
        grids = _cutout(grids, draw(2, [3], 0, resolution - size + 1), size)
    return grids

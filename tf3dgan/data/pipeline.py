"""tf.data pipelines that feed voxel grids to training.

The training stream is a pure function of (seed, step): batch number s holds
the shapes at positions s*B ... s*B+B-1 of an endless sequence made of one
seeded permutation of the dataset per epoch. A resumed run therefore sees
exactly the batches an uninterrupted run would have seen, without having to
checkpoint an iterator, and every worker of a multi-worker run can build the
same stream and take its own shard.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf3dgan import grid_rotation

# Keeps the augmentation's random stream apart from the permutations' (seed, epoch).
_AUGMENT_SEED_OFFSET = 0x5EED_A06


def _permutation(num_examples: int, seed: int, epoch) -> tf.Tensor:
    return tf.random.experimental.stateless_shuffle(
        tf.range(num_examples, dtype=tf.int64),
        seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)]))


def batch_indices(step, num_examples: int, batch_size: int, seed: int) -> tf.Tensor:
    """Indices of the examples in global batch number `step`.

    Args:
        step: int64 scalar tensor, the batch number.
        num_examples: Dataset size; must be at least `batch_size`.
        batch_size: Global batch size.
        seed: Seeds the per-epoch permutations.

    Returns:
        int64 tensor [batch_size].
    """
    positions = tf.cast(step, tf.int64) * batch_size + tf.range(batch_size, dtype=tf.int64)
    epochs = positions // num_examples
    first_epoch = epochs[0]
    # A batch spans at most two epochs because batch_size <= num_examples.
    current = _permutation(num_examples, seed, first_epoch)
    following = _permutation(num_examples, seed, first_epoch + 1)
    offsets = positions % num_examples
    return tf.where(epochs == first_epoch, tf.gather(current, offsets), tf.gather(following, offsets))


def check_upsampling(data_resolution: int, resolution: int) -> int:
    """The integer factor that brings the data's grids to the model's resolution.

    Args:
        data_resolution: Edge of the dataset's grids.
        resolution: Edge of the model's grids.

    Returns:
        ``resolution // data_resolution`` (1 when they are equal).

    Raises:
        ValueError: if ``resolution`` is not a multiple of ``data_resolution``.
    """
    if data_resolution < 1 or resolution % data_resolution:
        raise ValueError(
            f"The dataset's grids are {data_resolution}^3 but the model is {resolution}^3, and "
            f"{resolution} is not a multiple of {data_resolution}. Use --resolution "
            f"{data_resolution}, or prepare the data at {resolution}^3.")
    return resolution // data_resolution


def augment_batch(grids: tf.Tensor, seed: tf.Tensor, *, rotate: bool, flip: bool) -> tf.Tensor:
    """Rotate each grid by a random multiple of 90 degrees about z and/or mirror it in x, y.

    The transforms keep z (up) fixed, so shapes stay standing; they move no voxel off the
    grid and so keep every grid's occupancy count. Each grid gets its own draw: a rotation
    ``np.rot90(grid, k, axes=(0, 1))`` with k uniform in 0..3 (if ``rotate``), then a mirror
    of axis 0 and one of axis 1, each with probability 1/2 (if ``flip``).

    Args:
        grids: [B, R, R, R] tensor, axes (x, y, z).
        seed: int64 [2] stateless seed; the same seed gives the same transforms.
        rotate: Draw the rotations.
        flip: Draw the mirrors.

    Returns:
        The transformed grids, same shape and dtype.
    """
    if not (rotate or flip):
        return grids
    batch = tf.shape(grids)[0]
    draws = tf.random.stateless_uniform([3, batch], seed=seed, minval=0, maxval=4, dtype=tf.int32)
    turns = draws[0] if rotate else tf.zeros([batch], tf.int32)
    swap, mirror_x, mirror_y = grid_rotation.turn_as_swap_and_mirrors(turns)
    if flip:  # further mirrors in x and y commute with the turn's and toggle them
        mirror_x = tf.not_equal(mirror_x, tf.equal(draws[1] % 2, 1))
        mirror_y = tf.not_equal(mirror_y, tf.equal(draws[2] % 2, 1))
    return grid_rotation.swap_and_mirror(grids, swap, mirror_x, mirror_y)


def upsample(grids: tf.Tensor, factor: int) -> tf.Tensor:
    """Nearest-neighbour upsampling of [B, R, R, R] grids by an integer factor on each axis.

    Returns:
        [B, R * factor, R * factor, R * factor]: each voxel becomes a block of factor^3,
        as ``np.repeat`` along axes 1, 2 and 3 would make it.
    """
    if factor == 1:
        return grids
    for axis in (1, 2, 3):
        grids = tf.repeat(grids, factor, axis=axis)
    return grids


def training_dataset(voxels: np.ndarray, global_batch_size: int, seed: int,
                     start_step: int = 0, *, resolution: int | None = None,
                     rotate: bool = False, flip: bool = False) -> tf.data.Dataset:
    """Endless dataset of float32 batches [B, R, R, R], starting at batch `start_step`.

    Batch s is a pure function of (seed, s): its shapes (see :func:`batch_indices`) and its
    augmentation, drawn from the stateless seed (seed, s).

    Args:
        voxels: uint8/bool/float array [N, S, S, S] of occupancies in {0, 1}.
        global_batch_size: B, split across replicas by the strategy.
        seed: Seeds the order and the augmentation.
        start_step: Number of batches already consumed (for resuming).
        resolution: The model's grid edge R, a multiple of S: grids are upsampled by
            nearest neighbour (32 -> 64) in the pipeline. None keeps S.
        rotate: Rotate each grid by a random multiple of 90 degrees about z (up).
        flip: Mirror each grid in x and in y, each with probability 1/2.

    Returns:
        The dataset; each element a float32 tensor [B, R, R, R].

    Raises:
        ValueError: if the dataset is empty or smaller than one batch, or R is not a
            multiple of S.
    """
    num_examples = int(voxels.shape[0])
    if num_examples < global_batch_size:
        raise ValueError(
            f"The dataset has {num_examples} shapes, fewer than one batch of "
            f"{global_batch_size}. Use more shapes or a smaller --batch_size."
        )
    data_resolution = int(voxels.shape[1])
    factor = check_upsampling(data_resolution, resolution or data_resolution)
    grids = tf.constant(np.asarray(voxels, dtype=np.uint8))

    def load_batch(step):
        indices = batch_indices(step, num_examples, global_batch_size, seed)
        batch = tf.gather(grids, indices)
        # Augment before upsampling: the same transforms, on factor^3 fewer voxels.
        batch = augment_batch(batch, tf.stack([tf.constant(seed, tf.int64) + _AUGMENT_SEED_OFFSET,
                                               tf.cast(step, tf.int64)]),
                              rotate=rotate, flip=flip)
        return tf.cast(upsample(batch, factor), tf.float32)

    dataset = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
    dataset = dataset.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Each worker builds the same stream; DATA sharding splits every global
    # batch between them (FILE sharding has no files to split here).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

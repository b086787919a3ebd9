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


def training_dataset(voxels: np.ndarray, global_batch_size: int, seed: int,
                     start_step: int = 0) -> tf.data.Dataset:
    """Endless dataset of float32 batches [B, R, R, R], starting at batch `start_step`.

    Args:
        voxels: uint8/bool/float array [N, R, R, R] of occupancies in {0, 1}.
        global_batch_size: B, split across replicas by the strategy.
        seed: Seeds the order.
        start_step: Number of batches already consumed (for resuming).

    Raises:
        ValueError: if the dataset is empty or smaller than one batch.
    """
    num_examples = int(voxels.shape[0])
    if num_examples < global_batch_size:
        raise ValueError(
            f"The dataset has {num_examples} shapes, fewer than one batch of "
            f"{global_batch_size}. Use more shapes or a smaller --batch_size."
        )
    grids = tf.constant(np.asarray(voxels, dtype=np.uint8))

    def load_batch(step):
        indices = batch_indices(step, num_examples, global_batch_size, seed)
        return tf.cast(tf.gather(grids, indices), tf.float32)

    dataset = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
    dataset = dataset.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Each worker builds the same stream; DATA sharding splits every global
    # batch between them (FILE sharding has no files to split here).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

import numpy as np
import tensorflow as tf

from tf3dgan import grid_rotation


def _grids(batch=8, edge=6, seed=0):
    # Random occupancy: no grid is symmetric under a quarter turn.
    return np.random.default_rng(seed).random((batch, edge, edge, edge)).astype("float32")


def test_each_grid_is_turned_as_np_rot90_about_z():
    grids = _grids()
    turns = np.array([0, 1, 2, 3, 3, 2, 1, 0], np.int32)
    turned = grid_rotation.turn_about_z(tf.constant(grids), tf.constant(turns)).numpy()
    for grid, turn, got in zip(grids, turns, turned):
        np.testing.assert_array_equal(got, np.rot90(grid, turn, axes=(0, 1)))
    # z (up) stays where it was: every horizontal slice keeps its contents.
    np.testing.assert_allclose(turned.sum(axis=(1, 2)), grids.sum(axis=(1, 2)), rtol=1e-6)


def test_the_gradient_turns_back():
    grids = tf.constant(_grids(batch=4))
    turns = tf.constant([0, 1, 2, 3], tf.int32)
    weights = _grids(batch=4, seed=1)
    with tf.GradientTape() as tape:
        tape.watch(grids)
        value = tf.reduce_sum(grid_rotation.turn_about_z(grids, turns) * weights)
    gradient = tape.gradient(value, grids).numpy()
    for index, turn in enumerate(turns.numpy()):
        np.testing.assert_array_equal(gradient[index], np.rot90(weights[index], -turn, axes=(0, 1)))

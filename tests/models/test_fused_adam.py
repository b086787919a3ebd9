"""FusedAdam takes the same steps as keras.optimizers.Adam and shares its checkpoints."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan.models.fused_adam import FusedAdam


def _train(optimizer, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.normal(size=shape).astype("float32"))
                 for shape in [(4, 4, 4, 3, 5), (7,)]]
    for _ in range(steps):
        gradients = [tf.constant(rng.normal(size=v.shape).astype("float32")) for v in variables]
        optimizer.apply(gradients, variables)
    return variables


def test_takes_the_same_steps_as_keras_adam():
    reference = keras.optimizers.Adam(0.01, beta_1=0.5)
    fused = FusedAdam(0.01, beta_1=0.5)
    expected, actual = _train(reference), _train(fused)
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)
    for want, got in zip(reference.variables, fused.variables):  # iterations, moments, velocities
        np.testing.assert_allclose(np.asarray(got.numpy(), np.float64),
                                   np.asarray(want.numpy(), np.float64), rtol=1e-5, atol=1e-7)
    assert int(fused.iterations.numpy()) == 6


def test_moves_the_weights():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(3, 3)).astype("float32")
    variable = keras.Variable(start)
    FusedAdam(0.1).apply([tf.ones((3, 3))], [variable])
    np.testing.assert_allclose(variable.numpy(), start - 0.1, atol=1e-5)  # first step = lr * sign


def test_a_keras_adam_checkpoint_restores_into_it(tmp_path):
    variables = [keras.Variable(np.zeros((2, 2), "float32"))]
    reference = keras.optimizers.Adam(0.01)
    reference.apply([tf.ones((2, 2))], variables)
    path = tf.train.Checkpoint(optimizer=reference).write(str(tmp_path / "adam"))
    fused = FusedAdam(0.01)
    fused.build(variables)
    tf.train.Checkpoint(optimizer=fused).read(path).assert_consumed()
    for want, got in zip(reference.variables, fused.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="AMSGrad"):
        FusedAdam(amsgrad=True)

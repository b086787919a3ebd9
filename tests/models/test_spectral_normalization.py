"""Spectral normalization of D's convolutions, checked against NumPy's SVD."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan.models import Discriminator
from tf3dgan.models.spectral_normalization import (
    SpectralConv3D,
    SpectralStridedConv3D,
    largest_singular_value,
    power_iteration,
)
from tf3dgan.models.strided_conv3d import StridedConv3D


def _matrix(kernel):
    kernel = np.asarray(kernel, np.float64)
    return kernel.reshape(-1, kernel.shape[-1])


def _numpy_power_iteration(kernel, u):
    matrix = _matrix(kernel)
    v = matrix @ u
    v /= np.linalg.norm(v)
    u = matrix.T @ v
    return u / np.linalg.norm(u)


def test_power_iteration_converges_to_the_largest_singular_value():
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(4, 4, 4, 3, 6)), tf.float32)
    u = tf.constant(rng.normal(size=(6, 1)), tf.float32)
    u = u / tf.norm(u)
    for _ in range(200):
        u = power_iteration(kernel, u)
    top = np.linalg.svd(_matrix(kernel), compute_uv=False)[0]
    assert float(largest_singular_value(kernel, u)) == pytest.approx(top, rel=1e-4)


def test_one_step_is_numpys_power_iteration():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(4, 4, 4, 2, 5)).astype(np.float32)
    u = rng.normal(size=(5, 1)).astype(np.float32)
    u /= np.linalg.norm(u)
    np.testing.assert_allclose(power_iteration(tf.constant(kernel), tf.constant(u)),
                               _numpy_power_iteration(kernel, u), rtol=1e-5, atol=1e-6)


def _built(layer_class, reference_class, edge, **kwargs):
    keras.utils.set_random_seed(3)
    layer = layer_class(4, use_bias=False, **kwargs)
    reference = reference_class(4, use_bias=False, **kwargs)
    shape = (2, edge, edge, edge, 3)
    layer.build(shape)
    reference.build(shape)
    inputs = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    return layer, reference, inputs


@pytest.mark.parametrize("layer_class, reference_class, edge, kwargs", [
    (SpectralStridedConv3D, StridedConv3D, 8, {}),
    (SpectralConv3D, keras.layers.Conv3D, 4, {"kernel_size": 4, "padding": "valid"}),
])
def test_the_layer_convolves_with_its_kernel_divided_by_sigma(layer_class, reference_class, edge, kwargs):
    layer, reference, inputs = _built(layer_class, reference_class, edge, **kwargs)
    u = layer.singular_vector.numpy()
    assert np.linalg.norm(u) == pytest.approx(1.0, rel=1e-5)
    sigma = np.linalg.norm(_matrix(layer.kernel) @ u)
    reference.kernel.assign(layer.kernel.numpy() / sigma)
    np.testing.assert_allclose(layer(inputs, training=False), reference(inputs), rtol=1e-4, atol=1e-5)


def test_only_training_calls_advance_the_vector():
    layer, _, inputs = _built(SpectralStridedConv3D, StridedConv3D, 8)
    before = layer.singular_vector.numpy()
    inference = layer(inputs, training=False).numpy()
    np.testing.assert_array_equal(layer.singular_vector.numpy(), before)
    np.testing.assert_array_equal(layer(inputs, training=False).numpy(), inference)
    layer(inputs, training=True)
    np.testing.assert_allclose(layer.singular_vector.numpy(),
                               _numpy_power_iteration(layer.kernel.numpy(), before), rtol=1e-5, atol=1e-6)


def test_the_vector_is_not_trained_and_the_kernel_gets_gradients():
    layer, _, inputs = _built(SpectralStridedConv3D, StridedConv3D, 8)
    assert [w.name for w in layer.trainable_weights] == ["kernel"]
    assert [w.name for w in layer.non_trainable_weights] == ["singular_vector"]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(inputs, training=True)))
    gradient = tape.gradient(loss, layer.kernel.value)
    assert gradient is not None and np.all(np.isfinite(gradient)) and np.any(gradient != 0)


def test_a_spectral_discriminator_has_no_batchnorm_and_every_convolution_normalized():
    discriminator = Discriminator(resolution=16, base_filters=4, normalization="spectral")
    discriminator.build()
    assert all(batchnorm is None for _, batchnorm, _ in discriminator.hidden_blocks)
    assert all(hasattr(conv, "singular_vector") for conv in discriminator.conv_layers)
    assert not [w.path for w in discriminator.weights if "bn" in w.path]
    config = discriminator.get_config()
    assert config["normalization"] == "spectral"
    assert Discriminator.from_config(config).get_config() == config
    # The paper's D keeps BatchNorm and plain convolutions.
    paper = Discriminator(resolution=16, base_filters=4)
    paper.build()
    assert not any(hasattr(conv, "singular_vector") for conv in paper.conv_layers)


def test_training_calls_bring_every_normalized_kernel_to_spectral_norm_one():
    keras.utils.set_random_seed(0)
    discriminator = Discriminator(resolution=16, base_filters=4, normalization="spectral")
    voxels = (np.random.default_rng(0).random((2, 16, 16, 16)) > 0.7).astype(np.float32)
    for _ in range(100):
        discriminator(voxels, training=True)
    for conv in discriminator.conv_layers:
        sigma = float(largest_singular_value(conv.kernel, conv.singular_vector))
        normalized = _matrix(conv.kernel) / sigma
        assert np.linalg.svd(normalized, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-2), conv.name


def test_an_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match=r"normalization='layer' is not supported.*--discriminator_normalization"):
        Discriminator(resolution=16, base_filters=4, normalization="layer")

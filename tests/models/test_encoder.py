"""The image encoder: the paper's layer list, the smaller layouts, shapes and config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan.models import ImageEncoder


def _layer_list(encoder):
    return [(layer.kernel_size, layer.strides, layer.filters, layer.padding)
            for layer in encoder.conv_layers]


def _feature_sizes(encoder, images):
    """Edge of the map after each convolution (after its BatchNorm and ReLU)."""
    sizes = []
    x = encoder.rescale(images)
    for conv, batchnorm, activation in encoder.hidden_blocks:
        x = activation(batchnorm(conv(x)))
        sizes.append(tuple(x.shape[1:3]))
    sizes.append(tuple(encoder.output_conv(x).shape[1:3]))
    return sizes


def test_the_papers_encoder_at_256():
    encoder = ImageEncoder(latent_dim=200, image_size=256, base_filters=64)
    encoder.build()
    assert _layer_list(encoder) == [
        ((11, 11), (4, 4), 64, "same"),
        ((5, 5), (2, 2), 128, "same"),
        ((5, 5), (2, 2), 256, "same"),
        ((5, 5), (2, 2), 512, "same"),
        ((8, 8), (1, 1), 400, "valid"),
    ]
    images = np.random.default_rng(0).random((2, 256, 256, 3)).astype("float32")
    assert _feature_sizes(encoder, images) == [(64, 64), (32, 32), (16, 16), (8, 8), (1, 1)]
    z_mean, z_log_var = encoder(images)
    assert z_mean.shape == (2, 200) and z_log_var.shape == (2, 200)
    assert z_mean.dtype == tf.float32 and z_log_var.dtype == tf.float32
    # BatchNorm + ReLU after each of the first four, bias only on the last.
    for conv, batchnorm, activation in encoder.hidden_blocks:
        assert isinstance(batchnorm, keras.layers.BatchNormalization) and batchnorm.synchronized
        assert isinstance(activation, keras.layers.ReLU)
        assert not conv.use_bias
    assert encoder.output_conv.use_bias


@pytest.mark.parametrize("image_size, strides, sizes", [
    (128, (4, 2, 2, 1, 1), [(32, 32), (16, 16), (8, 8), (8, 8), (1, 1)]),
    (64, (2, 2, 2, 1, 1), [(32, 32), (16, 16), (8, 8), (8, 8), (1, 1)]),
    (32, (1, 2, 2, 1, 1), [(32, 32), (16, 16), (8, 8), (8, 8), (1, 1)]),
])
def test_smaller_inputs_keep_five_layers_and_the_kernels(image_size, strides, sizes):
    encoder = ImageEncoder(latent_dim=8, image_size=image_size, base_filters=4)
    encoder.build()
    layers = _layer_list(encoder)
    assert [kernel[0] for kernel, *_ in layers] == [11, 5, 5, 5, 8]
    assert [stride[0] for _, stride, *_ in layers] == list(strides)
    assert [filters for *_, filters, _ in layers] == [4, 8, 16, 32, 16]
    images = np.random.default_rng(0).random((3, image_size, image_size, 3)).astype("float32")
    assert _feature_sizes(encoder, images) == sizes
    z_mean, z_log_var = encoder(images, training=True)
    assert z_mean.shape == (3, 8) and z_log_var.shape == (3, 8)


def test_mean_and_log_variance_are_the_two_halves_of_the_last_layer():
    encoder = ImageEncoder(latent_dim=8, image_size=32, base_filters=4)
    images = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    z_mean, z_log_var = encoder(images)
    x = encoder.rescale(images)
    for conv, batchnorm, activation in encoder.hidden_blocks:
        x = activation(batchnorm(conv(x), training=False))
    moments = np.reshape(encoder.output_conv(x).numpy(), (2, 16))
    np.testing.assert_allclose(z_mean, moments[:, :8], rtol=1e-6)
    np.testing.assert_allclose(z_log_var, moments[:, 8:], rtol=1e-6)


def test_get_config_round_trips():
    encoder = ImageEncoder(latent_dim=8, image_size=64, base_filters=4, synchronized_batchnorm=False,
                           name="encoder")
    config = encoder.get_config()
    assert config == {"latent_dim": 8, "image_size": 64, "base_filters": 4,
                      "synchronized_batchnorm": False, "name": "encoder", "dtype": "float32"}
    clone = ImageEncoder.from_config(config)
    assert clone.get_config() == config
    # Registered: a serialized encoder comes back as one, with the same outputs.
    encoder.build()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(encoder))
    assert isinstance(restored, ImageEncoder)
    restored.build()
    restored.set_weights(encoder.get_weights())
    images = np.random.default_rng(2).random((2, 64, 64, 3)).astype("float32")
    for a, b in zip(encoder(images), restored(images)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_unsupported_image_size_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"image_size=100 is not supported. Expected one of "
                                         r"\(32, 64, 128, 256\)"):
        ImageEncoder(image_size=100)


def test_images_of_another_size_are_refused():
    encoder = ImageEncoder(latent_dim=8, image_size=32, base_filters=4)
    with pytest.raises(ValueError, match=r"reads images of shape \[batch, 32, 32, 3\], received "
                                         r"shape \(1, 64, 64, 3\)"):
        encoder(np.zeros((1, 64, 64, 3), "float32"))

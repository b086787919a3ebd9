import keras
import numpy as np
import pytest

from tf3dgan.models import Discriminator


def _layer_table(discriminator):
    return [(layer.filters, layer.kernel_size, layer.strides, layer.padding, layer.use_bias)
            for layer in discriminator.conv_layers]


@pytest.mark.parametrize("resolution, seed", [(64, 4), (32, 2)])
def test_paper_layer_list(resolution, seed):
    discriminator = Discriminator(resolution=resolution)
    discriminator.build()
    assert _layer_table(discriminator) == [
        (64, (4, 4, 4), (2, 2, 2), "same", False),
        (128, (4, 4, 4), (2, 2, 2), "same", False),
        (256, (4, 4, 4), (2, 2, 2), "same", False),
        (512, (4, 4, 4), (2, 2, 2), "same", False),
        (1, (seed,) * 3, (1, 1, 1), "valid", False),
    ]
    assert not [w.path for w in discriminator.weights if w.path.endswith("bias")]
    for index, (conv, batchnorm, activation) in enumerate(discriminator.hidden_blocks):
        assert (batchnorm is None) == (index == 0)
        assert isinstance(activation, keras.layers.LeakyReLU)
        assert activation.get_config()["negative_slope"] == pytest.approx(0.2)


@pytest.mark.parametrize("resolution", [64, 32])
def test_logits_and_feature_shapes(resolution):
    discriminator = Discriminator(resolution=resolution)
    voxels = (np.random.default_rng(0).random((2,) + (resolution,) * 3) > 0.8).astype("float32")
    logits = discriminator(voxels)
    assert logits.shape == (2, 1) and logits.dtype == "float32"
    features = discriminator.features(voxels)
    edge = resolution // 4
    assert [tuple(f.shape) for f in features] == [
        (2, edge, edge, edge, 128), (2, edge // 2, edge // 2, edge // 2, 256), (2, edge // 4, edge // 4, edge // 4, 512)]
    # Pooled to 2^3 each and concatenated, the paper's recognition feature has 7,168 numbers.
    assert sum(8 * f.shape[-1] for f in features) == 7168


def test_features_are_the_layers_that_feed_the_logit():
    discriminator = Discriminator(resolution=16, base_filters=4)
    voxels = np.random.default_rng(1).random((3, 16, 16, 16)).astype("float32")
    last = discriminator.features(voxels)[-1]
    np.testing.assert_allclose(discriminator.to_logit(discriminator.output_conv(last)),
                               discriminator(voxels), rtol=1e-5, atol=1e-6)


def test_get_config_round_trips():
    discriminator = Discriminator(resolution=32, base_filters=8, name="d")
    config = discriminator.get_config()
    assert Discriminator.from_config(config).get_config() == config


def test_rotation_head_predicts_four_turns_and_leaves_the_features_alone():
    voxels = (np.random.default_rng(0).random((3, 32, 32, 32)) > 0.8).astype("float32")
    keras.utils.set_random_seed(1)
    plain = Discriminator(resolution=32, base_filters=4)
    plain.build()
    keras.utils.set_random_seed(1)
    with_head = Discriminator(resolution=32, base_filters=4, rotation_head=True)
    with_head.build()
    logits, rotation_logits = with_head.logits_and_rotation_logits(voxels)
    assert tuple(logits.shape) == (3, 1) and tuple(rotation_logits.shape) == (3, 4)
    assert rotation_logits.dtype == "float32"
    np.testing.assert_allclose(logits.numpy(), plain(voxels).numpy(), rtol=1e-6)
    for got, want in zip(with_head.features(voxels), plain.features(voxels)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert Discriminator.from_config(with_head.get_config()).rotation_head
    with pytest.raises(ValueError, match=r"built without rotation_head; build it with rotation_head=True"):
        plain.logits_and_rotation_logits(voxels)

import keras
import numpy as np
import pytest

from tf3dgan.models import Generator


def _layer_table(generator):
    return [(layer.filters, layer.kernel_size, layer.strides, layer.padding, layer.use_bias)
            for layer in generator.conv_layers]


def test_paper_64_layer_list():
    generator = Generator(resolution=64)
    generator.build()
    assert _layer_table(generator) == [
        (512, (4, 4, 4), (1, 1, 1), "valid", False),
        (256, (4, 4, 4), (2, 2, 2), "same", False),
        (128, (4, 4, 4), (2, 2, 2), "same", False),
        (64, (4, 4, 4), (2, 2, 2), "same", False),
        (1, (4, 4, 4), (2, 2, 2), "same", False),
    ]
    z = np.random.default_rng(0).random((2, 200)).astype("float32")
    voxels = generator(z)
    assert voxels.shape == (2, 64, 64, 64)
    assert voxels.dtype == "float32"
    # No biases anywhere: BatchNorm's offset makes them redundant (official networks).
    assert not [w.path for w in generator.weights if w.path.endswith("bias")]


def test_intermediate_grid_sizes_64():
    generator = Generator(resolution=64, base_filters=4, latent_dim=8)
    generator.build()
    x = generator.to_grid(np.zeros((1, 8), "float32"))
    sizes = []
    for deconv, batchnorm, activation in generator.hidden_blocks:
        x = activation(batchnorm(deconv(x)))
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(4, 4, 4, 32), (8, 8, 8, 16), (16, 16, 16, 8), (32, 32, 32, 4)]


def test_32_variant_keeps_widths_and_shrinks_the_seed():
    generator = Generator(resolution=32)
    generator.build()
    table = _layer_table(generator)
    assert [row[0] for row in table] == [512, 256, 128, 64, 1]
    assert table[0][1:4] == ((2, 2, 2), (1, 1, 1), "valid")
    assert generator(np.zeros((3, 200), "float32")).shape == (3, 32, 32, 32)


def test_output_is_a_probability_and_batchnorm_is_between_layers():
    generator = Generator(resolution=16, latent_dim=8, base_filters=4)
    voxels = np.asarray(generator(np.random.default_rng(1).random((4, 8)).astype("float32")))
    assert voxels.min() >= 0.0 and voxels.max() <= 1.0
    for deconv, batchnorm, activation in generator.hidden_blocks:
        assert isinstance(batchnorm, keras.layers.BatchNormalization)
        assert isinstance(activation, keras.layers.ReLU)
    assert generator.output_activation.get_config()["activation"] == "sigmoid"


def test_training_mode_updates_batchnorm_statistics():
    generator = Generator(resolution=16, latent_dim=8, base_filters=4)
    generator.build()
    before = [w.numpy().copy() for w in generator.non_trainable_weights]
    generator(np.random.default_rng(2).random((4, 8)).astype("float32"), training=True)
    after = [w.numpy() for w in generator.non_trainable_weights]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))
    generator(np.random.default_rng(2).random((4, 8)).astype("float32"), training=False)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(after, generator.non_trainable_weights))


def test_get_config_round_trips():
    generator = Generator(resolution=32, latent_dim=16, base_filters=8, synchronized_batchnorm=False, name="g")
    config = generator.get_config()
    clone = Generator.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(generator))
    assert isinstance(restored, Generator) and restored.get_config() == config


def test_unsupported_resolution_says_what_is_supported():
    with pytest.raises(ValueError, match=r"resolution=48 is not supported. Expected one of \(16, 32, 64\)"):
        Generator(resolution=48)

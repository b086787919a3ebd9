"""A 3D-VAE-GAN step on two replicas (MirroredStrategy on two logical CPUs) equals one on one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan.models import VAEGAN3D, Discriminator, Generator, ImageEncoder
from tf3dgan.models.vae_gan import build_vae_gan


def _pairs(batch_size):
    """An endless stream of one fixed global batch of (images, voxels), sharded by DATA."""
    rng = np.random.default_rng(3)
    images = rng.random((batch_size, 32, 32, 3)).astype("float32")
    voxels = (rng.random((batch_size, 16, 16, 16)) > 0.7).astype("float32")
    dataset = tf.data.Dataset.from_tensors((images, voxels)).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _train(strategy, steps=1):
    # With the mode-seeking term, whose sample pairs must not straddle replicas.
    cfg = config_lib.SMOKE_VAE.replace(batch_size=4, mode_seeking_weight=1.0)
    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = build_vae_gan(cfg.model, cfg.train)
        # Plain SGD: unlike Adam, its step is proportional to the gradient, so a
        # loss scaled wrongly for the number of replicas would show.
        model.compile(g_optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5),
                      e_optimizer=keras.optimizers.SGD(0.5))
    history = model.fit(_pairs(cfg.train.batch_size), epochs=1, steps_per_epoch=steps, verbose=0,
                        shuffle=False).history
    return model, history


@pytest.fixture(scope="module")
def one_device():
    return _train(tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_two_replicas_train_the_same_model_as_one_device(one_device):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    single, single_history = one_device
    mirrored, mirrored_history = _train(strategy)
    assert sorted(mirrored_history) == sorted(single_history)
    for name in single_history:
        assert mirrored_history[name][0] == pytest.approx(single_history[name][0], rel=1e-4, abs=1e-5), name
    moved = {"encoder": 0, "generator": 0, "discriminator": 0}
    for a, b in zip(single.weights, mirrored.weights):
        assert a.path == b.path
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
        if a.trainable:
            moved[a.path.split("/")[0]] += 1
    assert all(count > 0 for count in moved.values()), moved
    assert bool(mirrored.d_gate_open.numpy()) == bool(single.d_gate_open.numpy())


def test_encoder_with_per_replica_batchnorm_is_refused_under_several_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope(), pytest.raises(ValueError, match="encoder was built with synchronized_batchnorm=False"):
        VAEGAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
                 Discriminator(resolution=16, base_filters=4),
                 ImageEncoder(latent_dim=8, image_size=32, base_filters=4, synchronized_batchnorm=False))

"""One step on two replicas (MirroredStrategy on two logical CPUs) equals one step on one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan.data import pipeline
from tf3dgan.models import GAN3D, Discriminator, Generator
from tf3dgan.models.gan import build_gan

from gan_steps import train_gan


def _config():
    # With the mode-seeking term, whose sample pairs must not straddle replicas,
    # and feature matching, whose batch means span both replicas. Every test
    # here trains this one model: TF's collective executor remembers each
    # collective instance's shape for the whole process, so two-replica models
    # with other collectives in one process would collide.
    return config_lib.SMOKE.replace(batch_size=8, mode_seeking_weight=1.0, feature_matching_weight=1.0)


def _train(strategy, steps=1):
    return train_gan(_config(), strategy, steps)


@pytest.fixture(scope="module")
def one_device():
    return _train(tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_two_replicas_train_the_same_model_as_one_device(one_device):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    single, single_history = one_device
    mirrored, mirrored_history = _train(strategy)
    for name in single_history:
        assert mirrored_history[name][0] == pytest.approx(single_history[name][0], rel=1e-4, abs=1e-5), name
    moved = 0
    for a, b in zip(single.weights, mirrored.weights):
        assert a.path == b.path
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
        moved += a.trainable
    assert moved > 0
    assert bool(mirrored.d_gate_open.numpy()) == bool(single.d_gate_open.numpy())


def test_per_replica_batchnorm_is_refused_under_several_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope(), pytest.raises(ValueError, match="build both with synchronized_batchnorm=True"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4, synchronized_batchnorm=False),
              Discriminator(resolution=16, base_filters=4))


def test_gate_state_is_identical_on_every_replica():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    gan, _ = _train(strategy, steps=2)
    values = [bool(v.numpy()) for v in strategy.experimental_local_results(gan.d_gate_open.value)]
    steps = [int(v.numpy()) for v in strategy.experimental_local_results(gan.step_counter.value)]
    assert len(values) == 2 and values[0] == values[1]
    assert steps == [2, 2]


@pytest.mark.parametrize("make_strategy", [
    tf.distribute.get_strategy,
    lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
    lambda: tf.distribute.MirroredStrategy(["/cpu:0"]),
    lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
], ids=["no_strategy", "one_device", "mirrored_one", "mirrored_two"])
def test_closed_gate_changes_nothing_of_d_on_either_code_path(make_strategy):
    # Without a mirrored strategy D's update is skipped in a tf.cond; with one it
    # is computed and the old state restored.
    strategy = make_strategy()
    cfg = _config()
    keras.utils.set_random_seed(7)
    with strategy.scope():
        gan = build_gan(cfg.model, cfg.train)
    gan.d_gate_open.assign(False)
    state = [np.array(v.numpy(), copy=True) for v in gan.discriminator.weights + gan.d_optimizer.variables]
    voxels = (np.random.default_rng(3).random((16, 16, 16, 16)) > 0.7).astype(np.uint8)
    history = gan.fit(pipeline.training_dataset(voxels, cfg.train.batch_size, seed=0),
                      epochs=1, steps_per_epoch=1, verbose=0, shuffle=False).history
    assert history["d_update_rate"] == [0.0]
    # BatchNorm's moving statistics are not D's update: they follow the forward passes.
    for before, variable in zip(state, gan.discriminator.weights + gan.d_optimizer.variables):
        if "moving" not in variable.path:
            np.testing.assert_array_equal(variable.numpy(), before, err_msg=variable.path)
    assert int(gan.g_optimizer.iterations.numpy()) == 1

"""Trains one step of a model on one device and on two replicas; writes both to an .npz.

MODEL is "vae_gan" (the 3D-VAE-GAN), "spectral_gan" (the 3D-GAN with a spectrally
normalized D), "wgan_gp" (the 3D-GAN with WGAN-GP's critic and gradient penalty) or
"rotation_gan" (the 3D-GAN with D's rotation task, and feature matching, so that D
makes four passes per step whose BatchNorm all-reduces must keep one order) or
"stable_gan" (G's weight average, R1 and differentiable augmentation) or "lazy_r1_gan"
(R1 every second step). Run by tests/distribute/test_mirrored_own_process.py in a fresh process: TensorFlow's
collective executor keeps each collective instance's shape for the life of the
process, and a MirroredStrategy created after other ones (the 3D-GAN's tests)
reuses their instance keys for tensors of other shapes ("Shape mismatch in the
collective instance 165 ..."). A user's program has one strategy; so does this one.

    python tests/distribute/replicas_in_own_process.py MODEL OUT.npz
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tf3dgan import distribute  # noqa: E402

distribute.split_cpu(2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf3dgan import config as config_lib  # noqa: E402
from tf3dgan.models.vae_gan import build_vae_gan  # noqa: E402

from gan_steps import train_gan  # noqa: E402  (this script's folder)

# The 3D-GAN variants, as config overrides of the smoke preset.
GAN_VARIANTS = {
    "spectral_gan": {"discriminator_normalization": "spectral"},
    "wgan_gp": {"discriminator_normalization": "none", "adversarial_loss": "wgan_gp",
                "d_accuracy_threshold": 1.0},
    "rotation_gan": {"rotation_head": True, "feature_matching_weight": 1.0},
    # The small-data levers: G's weight average, R1 on real grids (a double backward
    # through D's synchronized BatchNorm) and augmentations drawn per global batch.
    "stable_gan": {"ema_decay": 0.9, "r1_weight": 1.0, "diff_augment": "translate,flip,cutout"},
    # Lazy R1: the penalty inside a tf.cond whose branches both hold BatchNorm all-reduces.
    "lazy_r1_gan": {"r1_weight": 1.0, "r1_interval": 2},
}
MODELS = ("vae_gan", *GAN_VARIANTS)


def _pairs(batch_size):
    """An endless stream of one fixed global batch of (images, voxels), sharded by DATA."""
    rng = np.random.default_rng(3)
    images = rng.random((batch_size, 32, 32, 3)).astype("float32")
    voxels = (rng.random((batch_size, 16, 16, 16)) > 0.7).astype("float32")
    dataset = tf.data.Dataset.from_tensors((images, voxels)).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def train(model_kind, strategy, steps=1):
    # With the mode-seeking term, whose sample pairs must not straddle replicas.
    # Plain SGD: unlike Adam, its step is proportional to the gradient, so a loss
    # scaled wrongly for the number of replicas would show.
    keras.utils.set_random_seed(7)
    if model_kind == "vae_gan":
        cfg = config_lib.SMOKE_VAE.replace(batch_size=4, mode_seeking_weight=1.0)
        with strategy.scope():
            model = build_vae_gan(cfg.model, cfg.train)
            model.compile(g_optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5),
                          e_optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(_pairs(cfg.train.batch_size), epochs=1, steps_per_epoch=steps, verbose=0,
                            shuffle=False).history
        return model, history
    cfg = config_lib.SMOKE.replace(batch_size=8, mode_seeking_weight=1.0, **GAN_VARIANTS[model_kind])
    return train_gan(cfg, strategy, steps)


def main(model_kind, out_path):
    if model_kind not in MODELS:
        raise SystemExit(f"MODEL must be one of {MODELS}, received {model_kind!r}.")
    results = {}
    for name, strategy in (("single", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        model, history = train(model_kind, strategy)
        results[f"{name}/replicas"] = np.array(strategy.num_replicas_in_sync)
        results[f"{name}/gate_open"] = np.array(bool(model.d_gate_open.numpy()))
        for metric, values in history.items():
            results[f"{name}/history/{metric}"] = np.array(values[0])
        for variable in model.weights:
            results[f"{name}/weight/{variable.path}"] = variable.numpy()
            results[f"{name}/trainable/{variable.path}"] = np.array(variable.trainable)
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:3])

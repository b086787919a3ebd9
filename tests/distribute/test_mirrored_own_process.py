"""A step on two replicas (MirroredStrategy on two logical CPUs) equals one on one device.

For the models whose collectives differ from tests/distribute/test_mirrored.py's
3D-GAN: the 3D-VAE-GAN, the 3D-GAN with a spectrally normalized D (no BatchNorm in
D; each replica advances the power iteration's vector) and the 3D-GAN with
WGAN-GP's critic (a gradient penalty per example, mixing weights per global
batch), and the 3D-GAN whose D also predicts quarter turns (more D passes per
step, each with BatchNorm all-reduces). Each trains in a process of its own (see replicas_in_own_process.py).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf3dgan.models import VAEGAN3D, Discriminator, Generator, ImageEncoder

ROOT = Path(__file__).resolve().parents[2]


# The networks each model trains; every one must have moved.
NETWORKS = {"vae_gan": ("encoder", "generator", "discriminator"),
            "spectral_gan": ("generator", "discriminator"),
            "wgan_gp": ("generator", "discriminator"),
            "rotation_gan": ("generator", "discriminator"),
            "stable_gan": ("generator", "discriminator"),  # and the (untrained) weight average
            "lazy_r1_gan": ("generator", "discriminator")}


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def trained(request, tmp_path_factory):
    """One step on one device and on two replicas, in a process of its own."""
    out = tmp_path_factory.mktemp(f"{request.param}_replicas") / "results.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    script = Path(__file__).with_name("replicas_in_own_process.py")
    result = subprocess.run([sys.executable, str(script), request.param, str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as results:
        return request.param, {key: results[key] for key in results.files}


def _section(results, prefix):
    return {key[len(prefix):]: value for key, value in results.items() if key.startswith(prefix)}


def test_two_replicas_train_the_same_model_as_one_device(trained):
    model_kind, trained = trained
    assert int(trained["single/replicas"]) == 1 and int(trained["mirrored/replicas"]) == 2
    single_history = _section(trained, "single/history/")
    mirrored_history = _section(trained, "mirrored/history/")
    assert sorted(mirrored_history) == sorted(single_history)
    for name, value in single_history.items():
        assert float(mirrored_history[name]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), name
    single_weights = _section(trained, "single/weight/")
    mirrored_weights = _section(trained, "mirrored/weight/")
    assert sorted(single_weights) == sorted(mirrored_weights)
    moved = dict.fromkeys(NETWORKS[model_kind], 0)
    for path, value in single_weights.items():
        np.testing.assert_allclose(mirrored_weights[path], value, rtol=1e-4, atol=1e-5, err_msg=path)
        if bool(trained[f"single/trainable/{path}"]):
            moved[path.split("/")[0]] += 1
    assert all(count > 0 for count in moved.values()), moved
    assert bool(trained["mirrored/gate_open"]) == bool(trained["single/gate_open"])


def test_encoder_with_per_replica_batchnorm_is_refused_under_several_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope(), pytest.raises(ValueError, match="encoder was built with synchronized_batchnorm=False"):
        VAEGAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
                 Discriminator(resolution=16, base_filters=4),
                 ImageEncoder(latent_dim=8, image_size=32, base_filters=4, synchronized_batchnorm=False))

"""python -m pipelines.train --model vae_gan: a tiny run end to end, its checkpoints, and resuming."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan import training

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pipelines.train", *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(str(path))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    workdir = tmp_path / "resumed"
    command = ["--model", "vae_gan", "--preset", "smoke_vae", "--workdir", str(workdir)]
    first = _run(*command, "--train_steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    pairs = workdir / "pairs.npz"
    rendered_at = pairs.stat().st_mtime_ns

    second = _run(*command, "--train_steps", "4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from" in second.stdout and "at step 2." in second.stdout
    # The pairs were read back, not rendered again.
    assert "Pairs: read 40 rendered pairs" in second.stdout
    assert pairs.stat().st_mtime_ns == rendered_at
    assert (workdir / "export" / "4" / "saved_model.pb").exists()

    straight = training.train(config_lib.SMOKE_VAE, tmp_path / "straight", verbose=0)
    assert straight.step == 4
    resumed_values = _checkpoint_values(workdir / "checkpoints" / "ckpt-4")
    straight_values = _checkpoint_values(tmp_path / "straight" / "checkpoints" / "ckpt-4")
    assert resumed_values.keys() == straight_values.keys()
    # The encoder and its optimizer are checkpointed with the rest.
    for prefix in ("encoder/", "e_optimizer/", "generator/", "discriminator/", "gan/"):
        assert any(name.startswith(prefix) for name in resumed_values), prefix
    for name in straight_values:
        np.testing.assert_allclose(resumed_values[name], straight_values[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def test_a_vae_gan_with_another_prior_is_refused_with_the_fix(tmp_path):
    result = _run("--model", "vae_gan", "--preset", "smoke", "--workdir", str(tmp_path))
    assert result.returncode == 2
    assert "model='vae_gan' needs prior='standard_normal'" in result.stderr
    assert "Pass --prior standard_normal" in result.stderr

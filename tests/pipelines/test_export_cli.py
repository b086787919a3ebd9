"""python -m pipelines.export: a trained workdir to a servable model, and what bad inputs print."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines import export as export_cli
from tf3dgan import config as config_lib
from tf3dgan import export, priors, signatures, training

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run: 4 steps, checkpoints at steps 2 and 4."""
    workdir = tmp_path_factory.mktemp("run")
    result = training.train(config_lib.SMOKE, workdir, verbose=0)
    return workdir, result


def _latents(count):
    return priors.sample_latent("uniform", [count, config_lib.SMOKE.model.latent_dim], [5, 0])


def test_the_command_line_exports_the_newest_checkpoint(trained, tmp_path):
    workdir, result = trained
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.export", "--workdir", str(workdir),
         "--model_base_path", str(tmp_path / "models")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    version_dir = tmp_path / "models" / "4"  # the checkpoint's step
    assert f"SavedModel: {version_dir}" in completed.stdout
    assert sorted(os.listdir(tmp_path / "models")) == ["4"]

    loaded = tf.saved_model.load(str(version_dir))
    assert sorted(loaded.signatures) == sorted(signatures.SIGNATURE_NAMES)
    z = _latents(3)
    np.testing.assert_allclose(loaded.signatures["serving_default"](z=z)["voxels"],
                               result.gan.generator(z, training=False), rtol=1e-5, atol=1e-6)
    voxels = (np.random.default_rng(0).random((2, 16, 16, 16)) > 0.7).astype(np.float32)
    np.testing.assert_allclose(loaded.signatures["discriminator_features"](voxels=voxels)["logits"],
                               result.gan.discriminator(voxels, training=False), rtol=1e-5, atol=1e-5)
    # The training run's own export holds the same model.
    own = tf.saved_model.load(str(workdir / "export" / "4"))
    for name in ("serving_default", "sample"):
        inputs = {"z": z} if name == "serving_default" else {"seed": tf.constant([1, 2], tf.int64)}
        np.testing.assert_allclose(loaded.signatures[name](**inputs)["voxels"],
                                   own.signatures[name](**inputs)["voxels"], rtol=1e-6, atol=1e-7)
    card = export.read_model_card(version_dir)
    assert card["steps_trained"] == 4 and card["preset"] == "smoke" and card["version"] == 4
    assert card["data"]["description"] == "synthetic split=train classes=all"
    assert export.read_model_card(workdir / "export" / "4")["data"]["description"].startswith("synthetic: ")


def test_an_explicit_version(trained, tmp_path, capsys):
    workdir, _ = trained
    assert export_cli.main(["--workdir", str(workdir), "--model_base_path", str(tmp_path), "--version", "9"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["9"]
    assert export.read_model_card(tmp_path / "9")["version"] == 9
    assert "Restored " in capsys.readouterr().out


def _error(argv, capsys):
    code = export_cli.main(argv)
    return code, capsys.readouterr().err


def test_an_existing_version_is_refused(trained, tmp_path, capsys):
    workdir, _ = trained
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "saved_model.pb").write_text("kept")
    code, err = _error(["--workdir", str(workdir), "--model_base_path", str(tmp_path)], capsys)
    assert code == 2
    assert "error: Version 4 already exists" in err and "never overwritten" in err
    code, err = _error(["--workdir", str(workdir), "--model_base_path", str(tmp_path), "--version", "4"], capsys)
    assert code == 2 and "Version 4 already exists" in err
    assert (tmp_path / "4" / "saved_model.pb").read_text() == "kept"


def test_a_workdir_without_config_is_refused(tmp_path, capsys):
    code, err = _error(["--workdir", str(tmp_path), "--model_base_path", str(tmp_path / "m")], capsys)
    assert code == 2
    assert f"error: {tmp_path} has no config.json, so it is not a tf3dgan training workdir" in err
    code, err = _error(["--workdir", str(tmp_path / "missing"), "--model_base_path", str(tmp_path / "m")], capsys)
    assert code == 2 and "is not a directory; pass the workdir of a training run" in err
    assert not (tmp_path / "m").exists()


def test_a_workdir_without_checkpoints_is_refused(trained, tmp_path, capsys):
    workdir, _ = trained
    shutil.copy(workdir / "config.json", tmp_path / "config.json")
    code, err = _error(["--workdir", str(tmp_path), "--model_base_path", str(tmp_path / "m")], capsys)
    assert code == 2
    assert f"error: {tmp_path} has no checkpoint in {tmp_path / 'checkpoints'}; train first" in err


def test_a_base_path_that_is_a_file_is_refused(trained, tmp_path, capsys):
    workdir, _ = trained
    (tmp_path / "models").write_text("")
    code, err = _error(["--workdir", str(workdir), "--model_base_path", str(tmp_path / "models")], capsys)
    assert code == 2
    assert "is a file, not a directory. Pass a directory path" in err


@pytest.mark.parametrize("version", ["0", "-3", "two"])
def test_a_bad_version_flag_is_refused(tmp_path, capsys, version):
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main(["--workdir", str(tmp_path), "--model_base_path", str(tmp_path), "--version", version])
    assert exit_info.value.code == 2
    assert f"argument --version: expected a positive integer, received '{version}'" in capsys.readouterr().err


def test_a_vae_gan_workdir_is_exported_with_its_encoder(tmp_path):
    """Re-exporting a 3D-VAE-GAN rebuilds its encoder: the reconstruct signatures survive."""
    workdir = tmp_path / "vae"
    result = training.train(config_lib.SMOKE_VAE.replace(train_steps=2, steps_per_epoch=2), workdir,
                            verbose=0)
    assert export_cli.main(["--workdir", str(workdir), "--model_base_path", str(tmp_path / "models"),
                            "--version", "7"]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "models" / "7"))
    assert sorted(loaded.signatures) == sorted(signatures.signature_names(has_encoder=True))
    size = config_lib.SMOKE_VAE.model.image_size
    images = np.random.default_rng(1).random((2, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.signatures["reconstruct"](images=images)["voxels"],
                               result.gan.reconstruct(images, training=False), rtol=1e-5, atol=1e-5)

"""python -m pipelines.sample: a trained smoke run to meshes, grids and pictures, from every kind of PATH."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from pipelines import sample as sample_cli
from tf3dgan import config as config_lib
from tf3dgan import metrics, training
from tf3dgan.data import binvox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step smoke run: workdir/checkpoints/ckpt-2 and the SavedModel workdir/export/2."""
    workdir = tmp_path_factory.mktemp("run")
    result = training.train(config_lib.SMOKE.replace(train_steps=2, steps_per_epoch=2), workdir, verbose=0)
    return workdir, result


def _sample(model, out, *flags):
    return sample_cli.main(["--model", str(model), "--out", str(out), *flags])


def test_samples_from_the_workdir_and_its_saved_model_are_the_same(trained, tmp_path, capsys):
    workdir, result = trained
    assert _sample(workdir, tmp_path / "w", "--num", "3", "--seed", "5") == 0
    assert "Model: workdir" in capsys.readouterr().out
    assert _sample(result.export_path, tmp_path / "s", "--num", "3", "--seed", "5") == 0
    for seed in (5, 6, 7):
        from_workdir = np.load(tmp_path / "w" / f"seed_{seed}.npy")
        from_saved_model = np.load(tmp_path / "s" / f"seed_{seed}.npy")
        assert from_workdir.shape == (16, 16, 16)
        np.testing.assert_allclose(from_workdir, from_saved_model, rtol=1e-5, atol=1e-6)
    # ... and the same as the training run's generator.
    z = np.asarray(json.loads((tmp_path / "w" / "samples.json").read_text())["samples"][0]["z"], np.float32)
    np.testing.assert_allclose(np.load(tmp_path / "w" / "seed_5.npy"),
                               result.gan.generator(z[None], training=False)[0], rtol=1e-5, atol=1e-6)


def test_every_file_is_written_and_recorded(trained, tmp_path):
    workdir, _ = trained
    out = tmp_path / "out"
    assert _sample(workdir, out, "--num", "2", "--seed", "3", "--threshold", "0.5", "--format", "ply",
                   "--largest_component", "--smooth", "2") == 0
    record = json.loads((out / "samples.json").read_text())
    assert record["seeds"] == [3, 4] and record["prior"] == "uniform"
    assert record["options"]["threshold"] == 0.5 and record["options"]["largest_component"] is True
    assert record["model"]["kind"] == "workdir" and record["model"]["step"] == 2
    assert record["model"]["preset"] == "smoke" and record["model"]["resolution"] == 16
    for sample in record["samples"]:
        stem = out / f"seed_{sample['seed']}"
        probabilities = np.load(f"{stem}.npy")
        occupied = binvox.read_binvox(f"{stem}.binvox").voxels.astype(bool)
        # The grid is the thresholded probabilities with only the largest component left.
        assert not np.any(occupied & ~(probabilities > 0.5))
        assert occupied.sum() == sample["occupied_voxels"] > 0
        mesh = trimesh.load(f"{stem}.ply", force="mesh")
        assert len(mesh.faces) == sample["mesh"]["faces"] > 0
        assert Image.open(f"{stem}.png").size == (256, 256)
        # Of the raw sample, not of the cleaned-up files (which keep one piece).
        assert sample["stray_voxels"] == pytest.approx(metrics.stray_voxel_shares(probabilities[None])[0])
    assert record["stray_voxels"] == pytest.approx(np.mean([s["stray_voxels"] for s in record["samples"]]))
    assert Image.open(out / "samples.png").size == (2 * 130 - 2, 128)


def test_a_checkpoint_prefix_and_glb(trained, tmp_path):
    workdir, _ = trained
    assert _sample(workdir / "checkpoints" / "ckpt-2", tmp_path, "--num", "1", "--format", "glb") == 0
    record = json.loads((tmp_path / "samples.json").read_text())
    assert record["model"]["kind"] == "checkpoint"
    assert record["samples"][0]["mesh"]["up_axis"] == "y"
    assert trimesh.load(tmp_path / "seed_0.glb", force="mesh").faces.shape[0] > 0


def test_a_threshold_above_every_voxel_skips_the_mesh_and_says_so(trained, tmp_path, capsys):
    workdir, _ = trained
    assert _sample(workdir, tmp_path, "--num", "1", "--threshold", "0.99") == 0
    assert "no mesh for seeds [0]" in capsys.readouterr().out
    sample = json.loads((tmp_path / "samples.json").read_text())["samples"][0]
    assert "empty at threshold=0.99" in sample["mesh_skipped"] and "mesh" not in sample["files"]
    assert (tmp_path / "seed_0.npy").is_file() and (tmp_path / "seed_0.png").is_file()


def test_bad_paths_and_flags_exit_with_a_message(tmp_path, capsys):
    assert _sample(tmp_path / "nothing", tmp_path / "out", "--num", "1") == 2
    error = capsys.readouterr().err
    assert "is not a model" in error and "training workdir" in error and "host:port" in error
    with pytest.raises(SystemExit) as exit_info:
        _sample(tmp_path, tmp_path / "out", "--threshold", "1.5")
    assert exit_info.value.code == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _sample(tmp_path, tmp_path / "out", "--format", "fbx")


def test_the_module_runs_as_a_command(trained, tmp_path):
    _, result = trained
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.sample", "--model", str(result.export_path), "--num", "2",
         "--seed", "9", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    assert f"Wrote 2 samples to {tmp_path}" in completed.stdout
    assert sorted(path.name for path in tmp_path.glob("seed_10.*")) == [
        "seed_10.binvox", "seed_10.npy", "seed_10.obj", "seed_10.png"]

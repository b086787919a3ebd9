"""The training run: what it leaves in the workdir, resuming, and its faults."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan import training
from tf3dgan.callbacks import TrainingDivergedError
from tf3dgan.checkpointing import CheckpointMismatchError

ROOT = Path(__file__).resolve().parents[1]


def _train(workdir, **overrides):
    return training.train(config_lib.SMOKE.replace(**overrides), workdir, verbose=0)


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(str(path))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def test_a_run_leaves_checkpoints_logs_samples_and_a_servable_model(tmp_path):
    result = _train(tmp_path)
    assert result.step == 4
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == "smoke"
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    # Every weight (BatchNorm statistics included) and the optimizers' state are in it.
    stored = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-4")
    gan = result.gan
    for prefix, variables in [("generator/", gan.generator.weights), ("discriminator/", gan.discriminator.weights),
                              ("g_optimizer/", gan.g_optimizer.variables), ("d_optimizer/", gan.d_optimizer.variables)]:
        assert len([name for name in stored if name.startswith(prefix)]) == len(variables), prefix
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "final.png", "step_0000002.png", "step_0000004.png"]

    loaded = tf.saved_model.load(str(tmp_path / "export" / "4"))
    serving = loaded.signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["z"]
    z = result.gan.sample_latent(3, seed=0)
    voxels = serving(z=z)["voxels"]
    assert voxels.shape == (3, 16, 16, 16) and voxels.dtype == tf.float32
    # Inference mode: the export equals the generator with training=False.
    np.testing.assert_allclose(voxels, result.gan.generator(z, training=False), rtol=1e-5, atol=1e-6)


def test_running_again_after_the_end_does_not_train_more(tmp_path):
    _train(tmp_path)
    before = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-4")
    result = _train(tmp_path)
    assert result.step == 4 and result.history == {}
    after = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-4")
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_resume_continues_where_it_stopped(tmp_path):
    _train(tmp_path / "resumed", train_steps=2)
    _train(tmp_path / "resumed", train_steps=4)
    _train(tmp_path / "straight", train_steps=4)
    resumed = _checkpoint_values(tmp_path / "resumed" / "checkpoints" / "ckpt-4")
    straight = _checkpoint_values(tmp_path / "straight" / "checkpoints" / "ckpt-4")
    assert resumed.keys() == straight.keys()
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_run_with_the_small_data_levers_checkpoints_the_average_and_resumes_exactly(tmp_path):
    levers = dict(ema_decay=0.9, r1_weight=1.0, diff_augment="translate,flip,cutout")
    _train(tmp_path / "resumed", train_steps=2, **levers)
    _train(tmp_path / "resumed", train_steps=4, **levers)
    result = _train(tmp_path / "straight", train_steps=4, **levers)
    resumed = _checkpoint_values(tmp_path / "resumed" / "checkpoints" / "ckpt-4")
    straight = _checkpoint_values(tmp_path / "straight" / "checkpoints" / "ckpt-4")
    assert len([name for name in straight if name.startswith("generator_ema/")]) == len(
        result.gan.generator_ema.weights)
    assert resumed.keys() == straight.keys()
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-5, atol=1e-6, err_msg=name)
    card = json.loads((tmp_path / "straight" / "export" / "4" / "assets" / "model_card.json").read_text())
    assert card["generator_weights"].startswith("exponential moving average")


def test_turning_the_average_on_when_resuming_starts_it_from_the_trained_generator(tmp_path):
    _train(tmp_path, train_steps=2)
    result = _train(tmp_path, train_steps=2, ema_decay=0.9)  # nothing left to train
    for average, weight in zip(result.gan.generator_ema.weights, result.gan.generator.weights):
        np.testing.assert_array_equal(average.numpy(), weight.numpy())


def _command(workdir, steps):
    return [sys.executable, "-m", "pipelines.train", "--preset", "smoke", "--workdir", str(workdir),
            "--train_steps", str(steps), "--steps_per_epoch", "2"]


def test_sigkill_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    steps = 40
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    straight = subprocess.run(_command(tmp_path / "straight", steps), env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = subprocess.Popen(_command(tmp_path / "killed", steps), env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "checkpoints" / "checkpoint"
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        if state.exists() and "ckpt-10\"" in state.read_text():
            break
        time.sleep(0.02)
    assert killed.poll() is None, "the run ended before it could be killed; make it longer"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    interrupted_at = tf.train.latest_checkpoint(str(tmp_path / "killed" / "checkpoints"))
    assert interrupted_at is not None and not interrupted_at.endswith(f"ckpt-{steps}")

    resumed = subprocess.run(_command(tmp_path / "killed", steps), env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout

    a = _checkpoint_values(tmp_path / "straight" / "checkpoints" / f"ckpt-{steps}")
    b = _checkpoint_values(tmp_path / "killed" / "checkpoints" / f"ckpt-{steps}")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    _train(tmp_path, train_steps=2)
    good = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-2")
    with pytest.raises(TrainingDivergedError, match=r"Training diverged by step 4: non-finite .*"
                       r"Nothing was saved; the last good checkpoint is .*ckpt-2"):
        _train(tmp_path, train_steps=4, generator_learning_rate=float("inf"), discriminator_learning_rate=float("inf"))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    after = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-2")
    assert all(np.array_equal(good[k], after[k]) for k in good)


def test_a_workdir_of_another_architecture_is_refused(tmp_path):
    _train(tmp_path, train_steps=2)
    with pytest.raises(CheckpointMismatchError,
                       match=r"holds a checkpoint of another architecture: base_filters=4 \(this run: 8\)"):
        _train(tmp_path, base_filters=8)
    # Without its config.json, the checkpoint itself is checked.
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointMismatchError, match="does not fit this model"):
        _train(tmp_path, base_filters=8)


def test_a_spectrally_normalized_run_restores_and_exports_the_same_discriminator(tmp_path):
    from tf3dgan import feature_sources
    from tf3dgan.recognition_features import recognition_features

    result = _train(tmp_path, train_steps=2, discriminator_normalization="spectral")
    discriminator = result.gan.discriminator
    vectors = [conv.singular_vector.numpy() for conv in discriminator.conv_layers]
    voxels = (np.random.default_rng(0).random((3, 16, 16, 16)) > 0.7).astype(np.float32)
    expected = recognition_features(discriminator, voxels).numpy()
    # The power iteration's vectors are part of the checkpoint: a restored D is the same function.
    restored = feature_sources.open_model(tmp_path)
    np.testing.assert_allclose(restored.extract_batch(voxels), expected, rtol=1e-5, atol=1e-6)
    for conv, vector in zip(restored.discriminator.conv_layers, vectors):
        np.testing.assert_array_equal(conv.singular_vector.numpy(), vector)
    exported = feature_sources.open_model(tmp_path / "export" / "2")
    np.testing.assert_allclose(exported.extract_batch(voxels), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(CheckpointMismatchError,
                       match=r"discriminator_normalization='spectral' \(this run: 'batchnorm'\)"):
        _train(tmp_path, train_steps=4)


def test_a_run_with_the_rotation_task_checkpoints_its_head_and_resumes(tmp_path):
    from tf3dgan import feature_sources
    from tf3dgan.recognition_features import recognition_features

    result = _train(tmp_path, train_steps=2, rotation_head=True)
    head = {w.path: w.numpy() for w in result.gan.discriminator.weights if "rotation" in w.path}
    assert head  # the classifier's kernel and bias
    stored = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-2")
    assert len([name for name in stored if name.startswith("discriminator/")]) == len(
        result.gan.discriminator.weights)
    voxels = (np.random.default_rng(0).random((3, 16, 16, 16)) > 0.7).astype(np.float32)
    expected = recognition_features(result.gan.discriminator, voxels).numpy()
    np.testing.assert_allclose(feature_sources.open_model(tmp_path).extract_batch(voxels), expected,
                               rtol=1e-5, atol=1e-6)
    resumed = _train(tmp_path, train_steps=4, rotation_head=True)
    assert resumed.step == 4
    assert not all(np.array_equal(w.numpy(), head[w.path])
                   for w in resumed.gan.discriminator.weights if "rotation" in w.path)
    with pytest.raises(CheckpointMismatchError, match=r"rotation_head=True \(this run: False\)"):
        _train(tmp_path, train_steps=6)


def test_a_holdout_is_kept_away_from_the_training_stream(tmp_path):
    from tf3dgan.data import holdout, registry

    config = config_lib.SMOKE.replace(holdout_fraction=0.25)
    everything = registry.load_dataset(config.data, config.model.resolution, config.train.seed)
    seen, _ = training._load_data(config, tmp_path, chief=True)
    stored = holdout.load_holdout(tmp_path / holdout.HOLDOUT_FILE)
    held = stored.mask(everything.voxels)
    assert len(stored.hashes) == round(0.25 * len(np.unique(holdout.grid_hashes(everything.voxels))))
    # What the GAN trains on is the rest, in order, and no copy of a held-out grid.
    np.testing.assert_array_equal(seen.voxels, everything.voxels[~held])
    np.testing.assert_array_equal(seen.labels, everything.labels[~held])
    assert not np.isin(holdout.grid_hashes(seen.voxels), stored.hashes).any()
    assert f"{held.sum()} grids ({len(stored.hashes)} distinct, holdout_fraction=0.25) held out" in seen.description

    # Without checkpoints nothing was trained on them yet: a run without a holdout
    # starting over in the workdir removes the file rather than leave it to mislead.
    without, _ = training._load_data(config_lib.SMOKE, tmp_path, chief=True)
    assert len(without.voxels) == len(everything.voxels)
    assert not (tmp_path / holdout.HOLDOUT_FILE).exists()


def test_a_run_resumes_only_with_the_holdout_it_started_with(tmp_path):
    from tf3dgan.data import holdout

    _train(tmp_path, holdout_fraction=0.25, train_steps=2)
    written = (tmp_path / holdout.HOLDOUT_FILE).read_bytes()
    for overrides, message in [
            ({}, r"was trained with holdout_fraction=0.25 .*resume it with --holdout_fraction 0.25"),
            ({"holdout_fraction": 0.5}, r"was trained with holdout_fraction=0.25, seed 0, but this run "
                                        r"holds out other grids \(holdout_fraction=0.5, seed 0"),
            ({"holdout_fraction": 0.25, "seed": 1}, r"holds out other grids \(holdout_fraction=0.25, seed 1")]:
        with pytest.raises(CheckpointMismatchError, match=message):
            _train(tmp_path, train_steps=4, **overrides)
        assert (tmp_path / holdout.HOLDOUT_FILE).read_bytes() == written
    assert _train(tmp_path, holdout_fraction=0.25, train_steps=4).step == 4
    assert (tmp_path / holdout.HOLDOUT_FILE).read_bytes() == written

    plain = tmp_path / "plain"
    _train(plain, train_steps=2)
    with pytest.raises(CheckpointMismatchError, match=r"was trained with no holdout"):
        _train(plain, holdout_fraction=0.25, train_steps=4)
    assert not (plain / holdout.HOLDOUT_FILE).exists()


def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    _train(tmp_path, train_steps=4)
    for data_file in (tmp_path / "checkpoints").glob("ckpt-4.data-*"):
        data_file.write_bytes(data_file.read_bytes()[:100])  # a write cut short
    result = _train(tmp_path, train_steps=6)
    assert result.step == 6
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")


def test_a_missing_dataset_path_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="Dataset file '.*nope.npz' does not exist. Pass --data_path"):
        _train(tmp_path, data="npz", data_path=str(tmp_path / "nope.npz"))


def test_mode_seeking_needs_an_even_batch_per_replica(tmp_path):
    with pytest.raises(ValueError, match="batch_size=3 over 1 replica.* use a multiple of 2"):
        _train(tmp_path, batch_size=3, mode_seeking_weight=1.0)


def test_real_shapes_from_an_npz(tmp_path, modelnet10_32_path):
    result = training.train(
        config_lib.SMOKE.replace(resolution=32, data="modelnet10", data_path=modelnet10_32_path,
                                 classes="chair", train_steps=2),
        tmp_path, verbose=0)
    assert result.step == 2


def _trained_segments(result):
    # Epochs this call trained (a resumed run trains only the epochs after its checkpoint).
    return len(next(iter(result.history.values()))) if result.history else 0


@pytest.mark.parametrize("damage", ["missing", "garbage", "empty"])
def test_a_lost_checkpoint_state_file_resumes_from_the_checkpoint_files(tmp_path, capsys, damage):
    _train(tmp_path, train_steps=4)
    before = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-4")
    state = tmp_path / "checkpoints" / "checkpoint"
    if damage == "missing":
        state.unlink()
    else:
        state.write_text("" if damage == "empty" else "\x00\x17 not a checkpoint state {{")
    capsys.readouterr()
    result = _train(tmp_path, train_steps=6)
    out = capsys.readouterr().out
    assert f"{state} is {'missing' if damage == 'missing' else 'unreadable'}" in out
    assert "ckpt-2, ckpt-4" in out and "the newest that reads is resumed" in out
    assert f"Resuming from {tmp_path / 'checkpoints' / 'ckpt-4'} at step 4." in out
    assert result.step == 6 and _trained_segments(result) == 1
    after = _checkpoint_values(tmp_path / "checkpoints" / "ckpt-4")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # The state file lists every checkpoint again, so the manager keeps and sweeps them.
    assert tf.train.get_checkpoint_state(str(tmp_path / "checkpoints")).all_model_checkpoint_paths == [
        str(tmp_path / "checkpoints" / f"ckpt-{step}") for step in (2, 4, 6)]


def test_a_garbage_checkpoint_index_falls_back_to_the_previous_checkpoint(tmp_path, capsys):
    _train(tmp_path, train_steps=4)
    (tmp_path / "checkpoints" / "ckpt-4.index").write_bytes(b"garbage" * 20)
    capsys.readouterr()
    result = _train(tmp_path, train_steps=6)
    assert f"Resuming from {tmp_path / 'checkpoints' / 'ckpt-2'} at step 2." in capsys.readouterr().out
    assert result.step == 6 and _trained_segments(result) == 2


def test_a_workdir_whose_checkpoints_all_are_unreadable_is_refused_by_the_command_line(tmp_path, capsys):
    from pipelines import train as train_cli

    _train(tmp_path, train_steps=4)
    (tmp_path / "checkpoints" / "checkpoint").unlink()
    for index in (tmp_path / "checkpoints").glob("ckpt-*.index"):
        index.write_bytes(b"garbage" * 20)
    damaged = {path.name: path.read_bytes() for path in (tmp_path / "checkpoints").iterdir()
               if path.name != "checkpoint"}
    capsys.readouterr()
    code = train_cli.main(["--preset", "smoke", "--workdir", str(tmp_path), "--train_steps", "6"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"error: No checkpoint in {tmp_path / 'checkpoints'} could be read:" in err
    assert "ckpt-4: not an sstable (bad magic number)" in err and "ckpt-2: not an sstable" in err
    assert "Traceback" not in err
    assert "move the folder away to start the run over" in err
    # Nothing was started over on top of them.
    assert {path.name: path.read_bytes() for path in (tmp_path / "checkpoints").iterdir()
            if path.name != "checkpoint"} == damaged


def test_resuming_with_other_settings_keeps_the_first_config_and_records_each_start(tmp_path, capsys):
    from tf3dgan import checkpointing

    _train(tmp_path, train_steps=2)
    first = (tmp_path / "config.json").read_text()
    capsys.readouterr()
    _train(tmp_path, train_steps=4, batch_size=2, ema_decay=0.9)
    out = capsys.readouterr().out
    assert ("Resuming at step 2 with other settings than the run's previous start: batch_size=2 "
            "(was 4), ema_decay=0.9 (was 0.0), train_steps=4 (was 2).") in out
    assert (tmp_path / "config.json").read_text() == first
    _train(tmp_path, train_steps=6, batch_size=2, ema_decay=0.9)
    lines = [json.loads(line) for line in (tmp_path / "config_history.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 2, 4]
    assert [line["config"]["train"]["batch_size"] for line in lines] == [4, 2, 2]
    assert json.loads(first) == lines[0]["config"]
    # Used after training, the run is rebuilt as its latest start trained it (with the average).
    config = config_lib.ExperimentConfig.from_dict(json.loads(first))
    model, restored = checkpointing.restore_run(config, tmp_path / "checkpoints")
    assert restored.endswith("ckpt-6") and model.generator_ema is not None


def test_a_start_that_failed_before_its_first_checkpoint_does_not_claim_the_workdir(tmp_path, capsys):
    with pytest.raises(ValueError, match="fewer than one batch"):
        _train(tmp_path, batch_size=1000)
    assert not (tmp_path / "config.json").exists()
    # A start that fails during its first epoch leaves its config.json, but no checkpoint.
    with pytest.raises(TrainingDivergedError):
        _train(tmp_path, generator_learning_rate=float("inf"), discriminator_learning_rate=float("inf"))
    assert (tmp_path / "config.json").exists() and not list(tmp_path.glob("checkpoints/ckpt-*"))
    capsys.readouterr()
    assert _train(tmp_path, base_filters=8, train_steps=2).step == 2
    assert (f"{tmp_path / 'config.json'} was left by a start that wrote no checkpoint; this run's "
            "settings replace it.") in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["model"]["base_filters"] == 8


def test_stale_staging_of_an_interrupted_run_is_removed_at_the_next_start(tmp_path, capsys):
    _train(tmp_path, train_steps=2)
    # What a run killed while saving or exporting leaves (TensorFlow's and export.py's names).
    checkpoints, exports = tmp_path / "checkpoints", tmp_path / "export"
    (checkpoints / "ckpt-4_temp").mkdir()
    (checkpoints / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    (checkpoints / "checkpoint.tmp0123456789abcdef").write_text("partial")
    (exports / ".export-4-k2j3h4").mkdir()
    (exports / ".export-4-k2j3h4" / "model").mkdir()
    kept = sorted(path.name for path in checkpoints.iterdir() if "tmp" not in path.name
                  and "temp" not in path.name)
    capsys.readouterr()
    _train(tmp_path, train_steps=2)  # nothing left to train: only the start-up runs
    out = capsys.readouterr().out
    assert (f"Removed what an interrupted run left: {checkpoints / 'checkpoint.tmp0123456789abcdef'}, "
            f"{checkpoints / 'ckpt-4_temp'}, {exports / '.export-4-k2j3h4'}.") in out
    assert sorted(path.name for path in checkpoints.iterdir()) == kept
    assert sorted(path.name for path in exports.iterdir()) == ["2"]

"""The recognition benchmark: feature sources, the SVM protocol, the report and the CLI.

On tiny data: synthetic shapes at 16^3 and the smoke preset trained for a few steps.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tf3dgan import config as config_lib
from tf3dgan import (checkpoint_selection, evaluate, feature_sources, recognition, recognition_report,
                     training)
from tf3dgan.data.synthetic import make_synthetic_dataset
from tf3dgan.recognition_features import num_recognition_features

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("chair", "table", "bed")
SMOKE_STEPS = 4
FAST_SVM = recognition.SVMSettings(c_grid=(1e-3, 1e-1, 10.0), cv_folds=3)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    result = training.train(config_lib.SMOKE.replace(train_steps=SMOKE_STEPS, steps_per_epoch=2),
                            workdir, verbose=0)
    return workdir, result.export_path


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    """8 training and 6 test shapes per class, 3 classes, 16^3, with class names."""
    train_x, train_y = make_synthetic_dataset(8, resolution=16, seed=0, classes=CLASSES)
    test_x, test_y = make_synthetic_dataset(6, resolution=16, seed=1, classes=CLASSES)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, X_train=train_x, y_train=train_y, X_test=test_x, y_test=test_y,
             class_names=np.array(CLASSES))
    return path


def _grids(count=5, seed=3):
    voxels, _ = make_synthetic_dataset(count, resolution=16, seed=seed, classes=("chair",))
    return voxels


# ----------------------------------------------------------------------------
# Feature sources.

def test_workdir_checkpoint_and_saved_model_give_the_same_features(smoke_run):
    workdir, export_path = smoke_run
    voxels = _grids()
    sources = {
        "workdir": feature_sources.open_model(workdir),
        "checkpoints dir": feature_sources.open_model(workdir / "checkpoints"),
        "checkpoint prefix": feature_sources.open_model(workdir / "checkpoints" / f"ckpt-{SMOKE_STEPS}"),
        "saved model": feature_sources.open_model(export_path),
        "base path": feature_sources.open_model(export_path.parent),
    }
    features = {name: feature_sources.extract_features(source, voxels, batch_size=2)[0]
                for name, source in sources.items()}
    expected_size = num_recognition_features(16, config_lib.SMOKE.model.base_filters)
    for name, values in features.items():
        assert values.shape == (5, expected_size), name
        np.testing.assert_allclose(values, features["saved model"], rtol=1e-5, atol=1e-5, err_msg=name)
    assert sources["workdir"].identity["step"] == SMOKE_STEPS
    assert sources["workdir"].identity["config"]["preset"] == "smoke"
    assert sources["saved model"].identity["model_card"]["steps_trained"] == SMOKE_STEPS
    assert sources["saved model"].base_filters == config_lib.SMOKE.model.base_filters
    # Not trivially equal: an untrained discriminator of the same seed gives other features.
    untrained = feature_sources.untrained_discriminator(16, config_lib.SMOKE.model.base_filters, 0)
    assert not np.allclose(feature_sources.extract_features(untrained, voxels)[0], features["workdir"],
                           atol=1e-3)


def test_untrained_discriminator_depends_on_the_seed_alone():
    voxels = _grids(3)
    first, again, other = (feature_sources.extract_features(
        feature_sources.untrained_discriminator(16, 4, seed), voxels)[0] for seed in (7, 7, 8))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_data_is_upsampled_to_the_model_and_never_downsampled():
    source = feature_sources.untrained_discriminator(32, 4, 0)
    small = _grids(2)
    features, _ = feature_sources.extract_features(source, small)
    upsampled = small.repeat(2, axis=1).repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_allclose(features, source.extract_batch(upsampled.astype(np.float32)), atol=1e-6)
    with pytest.raises(ValueError, match="only upsampling"):
        feature_sources.extract_features(feature_sources.untrained_discriminator(16, 4, 0),
                                         np.zeros((1, 32, 32, 32), np.uint8))


def test_raw_voxels_are_max_pooled():
    voxels = np.zeros((1, 16, 16, 16), np.uint8)
    voxels[0, 5, 0, 15] = 1  # one voxel: cell (1, 0, 3) of the 4^3 pooled grid
    pooled = feature_sources.VoxelSource(4).extract_batch(voxels)
    expected = np.zeros((4, 4, 4), np.float32)
    expected[1, 0, 3] = 1
    np.testing.assert_array_equal(pooled, expected.reshape(1, -1))
    with pytest.raises(ValueError, match="does not divide"):
        feature_sources.VoxelSource(5).extract_batch(voxels)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing", "does not exist"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "is a file, not a model"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "not one this benchmark can read"),
    (lambda tmp: (tmp / "w").mkdir() or (tmp / "w" / "config.json").write_text(
        config_lib.SMOKE.to_json()) and tmp / "w", "has no checkpoint"),
])
def test_open_model_says_what_a_bad_path_is(tmp_path, make, message):
    with pytest.raises(feature_sources.ModelPathError, match=message):
        feature_sources.open_model(make(tmp_path))


# ----------------------------------------------------------------------------
# The protocol.

def _blobs(per_class, classes=3, size=20, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, size))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(0, spread, (len(labels), size)), labels


def test_c_is_chosen_on_the_training_split_only():
    train_x, train_y = _blobs(30, seed=0, spread=2.0)
    test_x, test_y = _blobs(20, seed=1, spread=2.0)
    settings = recognition.SVMSettings(c_grid=(1e-4, 1e-2, 1.0), cv_folds=3)
    reference = recognition.evaluate_features(train_x, train_y, test_x, test_y, settings)
    rng = np.random.default_rng(5)
    shuffled = recognition.evaluate_features(train_x, train_y, test_x, rng.permutation(test_y), settings)
    other_test = recognition.evaluate_features(train_x, train_y, rng.normal(0, 9, test_x.shape),
                                               test_y, settings)
    for result in (shuffled, other_test):
        assert result["c"] == reference["c"]
        assert result["cv_accuracy"] == reference["cv_accuracy"]
    # The test labels do reach the score (so the comparison above could fail).
    assert shuffled["accuracy"] < reference["accuracy"]
    # And the training labels decide C: the scores change when they do.
    relabelled = recognition.evaluate_features(train_x, rng.permutation(train_y), test_x, test_y, settings)
    assert relabelled["cv_accuracy"] != reference["cv_accuracy"]


@pytest.mark.parametrize("solver", recognition.SOLVERS)
def test_raw_voxel_baseline_separates_a_trivial_toy_set(solver):
    rng = np.random.default_rng(0)
    voxels = (rng.random((40, 16, 16, 16)) < 0.05).astype(np.uint8)
    labels = np.repeat([0, 1], 20)
    voxels[labels == 0, :8, :, :4] = 1   # class 0: a slab at the bottom left
    voxels[labels == 1, 8:, :, 12:] = 1  # class 1: a slab at the top right
    source = feature_sources.VoxelSource(8)
    features, _ = feature_sources.extract_features(source, voxels)
    train, test = np.arange(40) % 2 == 0, np.arange(40) % 2 == 1
    result = recognition.evaluate_features(features[train], labels[train], features[test], labels[test],
                                           recognition.SVMSettings(solver=solver, cv_folds=3))
    assert result["accuracy"] == 1.0
    assert result["confusion"] == [[10, 0], [0, 10]]


def test_gram_solver_is_scikit_learns_linear_svm_in_either_multiclass_scheme():
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import SVC

    train_x, train_y = _blobs(15, classes=4, seed=0, spread=2.5)
    test_x, _ = _blobs(25, classes=4, seed=1, spread=2.5)
    train_std, test_std = recognition.standardize(train_x, test_x)
    c_values = (1e-3, 1e-1)
    references = {"ovo": lambda c: SVC(C=c, kernel="linear"),
                  "ovr": lambda c: OneVsRestClassifier(SVC(C=c, kernel="linear"))}
    predicted = {}
    for scheme, reference in references.items():
        predictions, _ = recognition.predict_for_grid(
            train_x, train_y, test_x, c_values, recognition.SVMSettings(multiclass=scheme))
        for c in c_values:
            expected = reference(c).fit(train_std, train_y).predict(test_std)
            np.testing.assert_array_equal(predictions[c], expected, err_msg=f"{scheme}, C={c}")
        predicted[scheme] = predictions
    # The schemes disagree on these samples, so the comparisons above tell them apart.
    assert any(not np.array_equal(predicted["ovo"][c], predicted["ovr"][c]) for c in c_values)


@pytest.mark.parametrize("arguments, message", [
    ({"multiclass": "crammer_singer"}, "multiclass='crammer_singer' is not supported"),
    ({"solver": "liblinear", "multiclass": "ovo"}, "one-vs-rest only"),
])
def test_svm_settings_refuse_a_multiclass_scheme_they_cannot_fit(arguments, message):
    with pytest.raises(ValueError, match=message):
        recognition.SVMSettings(**arguments)


def test_classification_summary_against_a_count():
    true = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    summary = recognition.classification_summary(true, predicted, [0, 1, 2, 3])
    assert summary["confusion"] == [[1, 1, 0, 0], [1, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert summary["accuracy"] == pytest.approx(3 / 6)
    assert summary["per_class_accuracy"] == [0.5, pytest.approx(2 / 3), 0.0, None]
    assert summary["mean_per_class_accuracy"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)


def test_limited_data_curve_draws_per_class_subsets():
    train_x, train_y = _blobs(12, seed=0)
    train_x, train_y = train_x[train_y != 2][:-6], train_y[train_y != 2][:-6]  # class 1: 6 samples
    test_x, test_y = _blobs(5, classes=3, seed=1)
    test_x, test_y = test_x[test_y != 2], test_y[test_y != 2]
    curve = recognition.limited_data_curve(train_x, train_y, test_x, test_y, (4, 10, 50), 3, FAST_SVM)
    assert [point["train_size"] for point in curve] == [8, 16, 18]
    assert [point["capped_classes"] for point in curve] == [[], [1], [0, 1]]
    assert [point["draws"] for point in curve] == [3, 3, 1]  # 50: every class whole, one draw
    again = recognition.limited_data_curve(train_x, train_y, test_x, test_y, (4,), 3, FAST_SVM)
    assert again[0]["accuracies"] == curve[0]["accuracies"]


def test_too_few_samples_for_cross_validation_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 training samples of every class"):
        recognition.choose_c(np.zeros((3, 2)), np.array([0, 0, 1]), FAST_SVM)


# ----------------------------------------------------------------------------
# The command line and the report.

def _cli_args(model, data_path, out):
    return ["--model", str(model), "--data", "npz", "--data_path", str(data_path), "--out", str(out),
            "--c_grid", "0.001,0.1,10", "--cv_folds", "3", "--curve_sizes", "3,5",
            "--curve_draws", "2", "--voxel_edge", "8", "--batch_size", "8"]


def test_cli_end_to_end_writes_the_report_and_prints_the_table_last(smoke_run, tiny_npz, tmp_path, capsys):
    workdir, _ = smoke_run
    out = tmp_path / "out"
    assert evaluate.main(_cli_args(workdir, tiny_npz, out)) == 0
    stdout = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    for field in recognition_report.REPORT_FIELDS:
        assert field in report, field
    assert list(report["methods"]) == ["model", "untrained_d", "raw_voxels"]
    for key, method in report["methods"].items():
        for field in recognition_report.METHOD_FIELDS:
            assert field in method, (key, field)
        assert 0.0 <= method["accuracy"] <= 1.0
        assert np.sum(method["confusion"]) == 18
        assert sorted(method["cv_accuracy"]) == sorted(["0.001", "0.1", "10"])
        assert method["c"] in (0.001, 0.1, 10.0)
        assert [point["per_class"] for point in method["curve"]] == [3, 5]
        assert set(method["per_class_accuracy"]) == set(CLASSES)
        assert Image.open(out / f"confusion_{key}.png").size[0] > 100
    assert report["methods"]["model"]["num_features"] == num_recognition_features(16, 4)
    assert report["methods"]["raw_voxels"]["num_features"] == 8 ** 3
    assert report["model"]["kind"] == "workdir" and report["model"]["step"] == SMOKE_STEPS
    data = report["data"]
    assert data["sha256"] == _sha256(tiny_npz)
    assert data["splits"]["train"]["per_class"] == {name: 8 for name in CLASSES}
    assert data["splits"]["test"]["count"] == 18
    assert report["settings"]["svm"]["c_grid"] == [0.001, 0.1, 10.0]
    assert report["settings"]["curve_draws"] == 2
    assert report["timings"]["total_seconds"] > 0
    assert Image.open(out / "curve.png").size == (760, 480)
    last_block = stdout.strip().split("\n\n")[-1]
    assert last_block.startswith("Recognition on npz")
    for name in ("model (step 4)", "untrained D (seed 0)", "raw voxels 8^3"):
        assert name in last_block


def _sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_cli_bad_model_path_exits_2_with_a_clear_message(tiny_npz, tmp_path, capsys):
    assert evaluate.main(_cli_args(tmp_path / "nowhere", tiny_npz, tmp_path / "out")) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "not_a_model").mkdir()
    assert evaluate.main(_cli_args(tmp_path / "not_a_model", tiny_npz, tmp_path / "out")) == 2
    assert "not one this benchmark can read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_module_entry_point_exits_2_on_a_bad_model_path(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tf3dgan.evaluate", "--model", str(tmp_path / "nowhere"),
         "--data", "modelnet10", "--data_path", "x.npz"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"--model {tmp_path / 'nowhere'} does not exist" in result.stderr


def test_an_unknown_task_is_refused(tiny_npz, tmp_path, capsys):
    assert evaluate.main(_cli_args(tmp_path, tiny_npz, tmp_path / "o") + ["--task", "segmentation"]) == 2
    assert "Unknown --task" in capsys.readouterr().err


def test_model_and_server_are_exclusive(tiny_npz, tmp_path, capsys):
    args = _cli_args(tmp_path, tiny_npz, tmp_path / "o") + ["--server", "127.0.0.1:1"]
    assert evaluate.main(args) == 2
    assert "either --model PATH or --server" in capsys.readouterr().err


@pytest.mark.parametrize("task, module_name", [("generation", "generation_benchmark"),
                                               ("reconstruction", "reconstruction_benchmark")])
def test_other_tasks_are_handed_to_their_benchmark(monkeypatch, task, module_name):
    import importlib

    module = importlib.import_module(f"tf3dgan.{module_name}")
    received = []

    def fake_main(argv=None):
        received.append(argv)
        return 7

    monkeypatch.setattr(module, "main", fake_main)
    argv = ["--task", task, "--model", "runs/x", "--data", "modelnet10"]
    assert evaluate.main(argv) == 7
    assert received == [argv]


# ----------------------------------------------------------------------------
# Choosing a workdir's checkpoint on the training split: by CV, or on a run's held-out shapes.

def test_checkpoint_selection_scores_every_checkpoint_by_training_cv(smoke_run, tiny_npz):
    workdir, _ = smoke_run
    with np.load(tiny_npz) as data:
        train_x, train_y = data["X_train"], data["y_train"]
    _, checkpoints = checkpoint_selection.workdir_checkpoints(workdir)
    selection = checkpoint_selection.select_checkpoint(checkpoints, train_x, train_y, FAST_SVM, batch_size=8)
    steps = [candidate["step"] for candidate in selection["candidates"]]
    assert steps == [2, SMOKE_STEPS]  # steps_per_epoch=2: a checkpoint every 2 steps
    for candidate in selection["candidates"]:
        # Recomputed independently: the checkpoint's own features and the CV protocol.
        features, _ = feature_sources.extract_features(feature_sources.open_model(candidate["checkpoint"]),
                                                       train_x, batch_size=8)
        expected = recognition.choose_c(features, train_y, FAST_SVM)
        assert candidate["c"] == expected["c"]
        assert candidate["cv_accuracy"] == pytest.approx(expected["cv_accuracy"][expected["c"]])
    best = max(candidate["cv_accuracy"] for candidate in selection["candidates"])
    assert selection["chosen"]["cv_accuracy"] == best
    assert selection["chosen"]["step"] == max(candidate["step"] for candidate in selection["candidates"]
                                              if candidate["cv_accuracy"] == best)


def test_checkpoint_selection_breaks_ties_towards_the_later_step():
    candidates = [{"step": 500, "cv_accuracy": 0.9}, {"step": 1000, "cv_accuracy": 0.91},
                  {"step": 1500, "cv_accuracy": 0.91}, {"step": 2000, "cv_accuracy": 0.89}]
    assert checkpoint_selection.best_candidate(candidates)["step"] == 1500


def test_cli_select_checkpoint_chooses_before_the_test_split_is_loaded(smoke_run, tiny_npz, tmp_path,
                                                                       monkeypatch, capsys):
    from tf3dgan import recognition_benchmark

    workdir, _ = smoke_run
    events = []
    load_split, select = recognition_benchmark.load_split, checkpoint_selection.select_checkpoint
    monkeypatch.setattr(recognition_benchmark, "load_split",
                        lambda settings, split, resolution: events.append(split) or load_split(
                            settings, split, resolution))
    monkeypatch.setattr(checkpoint_selection, "select_checkpoint",
                        lambda *args, **kwargs: events.append("select") or select(*args, **kwargs))
    out = tmp_path / "out"
    assert evaluate.main(_cli_args(workdir, tiny_npz, out) + ["--select_checkpoint"]) == 0
    assert events == ["train", "select", "test"]
    report = json.loads((out / "report.json").read_text())
    selection = report["checkpoint_selection"]
    assert [candidate["step"] for candidate in selection["candidates"]] == [2, SMOKE_STEPS]
    assert report["model"]["kind"] == "checkpoint"
    assert report["model"]["step"] == selection["chosen"]["step"]
    assert report["timings"]["checkpoint_selection_seconds"] > 0
    assert Image.open(out / recognition_report.SELECTION_FILE).size == (760, 480)
    stdout = capsys.readouterr().out
    assert "Checkpoint selection (CV accuracy on the training split)" in stdout
    assert "<- chosen" in stdout

    # The test labels play no part in the choice: permute them and choose again.
    with np.load(tiny_npz) as data:
        arrays = dict(data)
    arrays["y_test"] = np.random.default_rng(0).permutation(arrays["y_test"])
    relabelled = tmp_path / "relabelled.npz"
    np.savez(relabelled, **arrays)
    events.clear()
    assert evaluate.main(_cli_args(workdir, relabelled, tmp_path / "out2") + ["--select_checkpoint"]) == 0
    again = json.loads((tmp_path / "out2" / "report.json").read_text())["checkpoint_selection"]
    assert [(c["step"], c["c"], c["cv_accuracy"]) for c in again["candidates"]] == \
        [(c["step"], c["c"], c["cv_accuracy"]) for c in selection["candidates"]]


def test_with_a_holdout_each_checkpoint_is_scored_on_the_shapes_the_gan_did_not_see(smoke_run, tiny_npz):
    from tf3dgan.data import holdout

    workdir, _ = smoke_run
    with np.load(tiny_npz) as data:
        train_x, train_y = data["X_train"], data["y_train"]
    held_out = holdout.choose_holdout(train_x, 0.25, seed=0)
    held = held_out.mask(train_x)
    _, checkpoints = checkpoint_selection.workdir_checkpoints(workdir)
    selection = checkpoint_selection.select_checkpoint(checkpoints, train_x, train_y, FAST_SVM, batch_size=8,
                                                       held_out=held_out)
    assert selection["criterion"] == "holdout_accuracy"
    assert selection["holdout"] == {"fraction": 0.25, "seed": 0, "held_out": int(held.sum()),
                                    "seen": int((~held).sum())}
    for candidate in selection["candidates"]:
        # Recomputed independently: an SVM fitted on the seen shapes, scored on the held-out ones.
        features, _ = feature_sources.extract_features(feature_sources.open_model(candidate["checkpoint"]),
                                                       train_x, batch_size=8)
        expected = recognition.evaluate_features(features[~held], train_y[~held], features[held],
                                                 train_y[held], FAST_SVM)
        assert candidate["c"] == expected["c"]
        assert candidate["holdout_accuracy"] == pytest.approx(expected["accuracy"])
        assert candidate["cv_accuracy"] == pytest.approx(expected["cv_accuracy"][expected["c"]])
    assert selection["chosen"] == checkpoint_selection.best_candidate(selection["candidates"],
                                                                      "holdout_accuracy")

    # Data without the run's held-out grids cannot score them.
    other = holdout.choose_holdout(_grids(), 0.5, seed=0)
    with pytest.raises(ValueError, match=rf"0 of the 24 training grids are among the run's "
                                         rf"{len(other.hashes)} held-out grids .*pass the run's --data, --data_path and --classes"):
        checkpoint_selection.select_checkpoint(checkpoints, train_x, train_y, FAST_SVM, held_out=other)


def test_cli_select_checkpoint_reads_the_runs_holdout(smoke_run, tiny_npz, tmp_path, capsys):
    import shutil

    from tf3dgan.data import holdout

    workdir = tmp_path / "run"
    shutil.copytree(smoke_run[0], workdir)
    with np.load(tiny_npz) as data:
        holdout.save_holdout(holdout.choose_holdout(data["X_train"], 0.25, seed=0),
                             workdir / holdout.HOLDOUT_FILE)
    out = tmp_path / "out"
    assert evaluate.main(_cli_args(workdir, tiny_npz, out) + ["--select_checkpoint"]) == 0
    selection = json.loads((out / "report.json").read_text())["checkpoint_selection"]
    assert selection["criterion"] == "holdout_accuracy" and selection["holdout"]["held_out"] == 6
    stdout = capsys.readouterr().out
    assert "Checkpoint selection (accuracy on the 6 training shapes held away from the GAN, SVM fitted " \
           "on the 18 it saw)" in stdout
    assert "| held-out acc. | held-out mean/class |" in stdout
    assert Image.open(out / recognition_report.SELECTION_FILE).size == (760, 480)

    (workdir / holdout.HOLDOUT_FILE).write_text("damaged")
    assert evaluate.main(_cli_args(workdir, tiny_npz, tmp_path / "o") + ["--select_checkpoint"]) == 2
    assert "heldout.npz is not a tf3dgan holdout file" in capsys.readouterr().err


def test_cli_select_checkpoint_needs_a_workdir(smoke_run, tiny_npz, tmp_path, capsys):
    workdir, export_path = smoke_run
    assert evaluate.main(_cli_args(export_path, tiny_npz, tmp_path / "o") + ["--select_checkpoint"]) == 2
    assert "--select_checkpoint needs a training workdir" in capsys.readouterr().err
    empty = tmp_path / "fresh_run"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "config.json").write_text((workdir / "config.json").read_text())
    assert evaluate.main(_cli_args(empty, tiny_npz, tmp_path / "o") + ["--select_checkpoint"]) == 2
    assert "has no checkpoint (ckpt-<step>.index)" in capsys.readouterr().err
    served = _cli_args(workdir, tiny_npz, tmp_path / "o")[2:] + ["--server", "127.0.0.1:1",
                                                                  "--model_name", "m", "--select_checkpoint"]
    assert evaluate.main(served) == 2
    assert "pass --model WORKDIR" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

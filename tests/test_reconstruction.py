"""The reconstruction benchmark: metrics against NumPy/scikit-learn, the retrieval baseline,
the threshold chosen on training renders only, the report, and the command line."""

import json
import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from tf3dgan import (
    evaluate,
    reconstruction,
    reconstruction_benchmark,
    reconstruction_models,
    reconstruction_report,
)
from tf3dgan.data.image_pairs import PairSet
from tf3dgan.data.synthetic import make_synthetic_dataset

CLASSES = ("chair", "table")


def _reference_iou(scores, truth, threshold):
    values = []
    for score, target in zip(scores, truth):
        predicted, actual = score.ravel() > threshold, target.ravel() > 0.5
        union = np.sum(predicted | actual)
        values.append(1.0 if union == 0 else np.sum(predicted & actual) / union)
    return np.array(values)


def _grids(rng, count, edge=6, fill=0.3):
    return (rng.random((count, edge, edge, edge)) < fill).astype(np.uint8)


# ----------------------------------------------------------------------------
# Metrics.

def test_iou_matches_a_numpy_reference_at_each_threshold():
    rng = np.random.default_rng(0)
    truth = _grids(rng, 5)
    scores = rng.random(truth.shape).astype(np.float32)
    thresholds = [0.2, 0.5, 0.8]
    values = reconstruction.iou_at_thresholds(scores, truth, thresholds)
    assert values.shape == (5, 3)
    for column, threshold in enumerate(thresholds):
        np.testing.assert_allclose(values[:, column], _reference_iou(scores, truth, threshold))
    np.testing.assert_allclose(reconstruction.iou(scores, truth), values[:, 1])


def test_iou_is_strict_at_the_threshold_and_one_for_two_empty_grids():
    truth = np.zeros((2, 2, 2, 2), np.uint8)
    truth[0, 0, 0, 0] = 1
    scores = np.zeros_like(truth, dtype=np.float32)
    scores[0, 0, 0, 0] = 0.5  # not above 0.5: predicted empty
    np.testing.assert_array_equal(reconstruction.iou(scores, truth, 0.5), [0.0, 1.0])
    np.testing.assert_array_equal(reconstruction.iou(scores, truth, 0.4), [1.0, 1.0])


def test_iou_refuses_grids_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        reconstruction.iou(np.zeros((2, 4, 4, 4)), np.zeros((2, 8, 8, 8)))


@pytest.mark.parametrize("levels", [None, 5, 2])  # continuous, heavily tied, binary
def test_average_precision_equals_sklearn_per_grid(levels):
    rng = np.random.default_rng(levels or 1)
    truth = _grids(rng, 6)
    scores = rng.random(truth.shape).astype(np.float32)
    scores = 0.6 * scores + 0.4 * truth  # informative, not perfect
    if levels:
        scores = np.floor(scores * (levels - 1e-6)) / (levels - 1)
    values = reconstruction.average_precision(scores, truth)
    expected = [average_precision_score(target.ravel(), score.ravel()) for score, target in zip(scores, truth)]
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-12)


def test_average_precision_of_binary_voxels_is_precision_times_recall_plus_the_tail():
    rng = np.random.default_rng(3)
    truth, predicted = _grids(rng, 4), _grids(rng, 4)
    values = reconstruction.average_precision(predicted.astype(np.float32), truth)
    for value, guess, target in zip(values, predicted, truth):
        hits = np.sum(guess & target)
        precision, recall = hits / guess.sum(), hits / target.sum()
        assert value == pytest.approx(precision * recall + (1 - recall) * target.mean())


def test_average_precision_is_one_for_a_perfect_ranking_and_nan_for_an_empty_truth():
    truth = np.zeros((2, 3, 3, 3), np.uint8)
    truth[0, :2] = 1
    scores = np.where(truth, 0.9, 0.1).astype(np.float32)
    values = reconstruction.average_precision(scores, truth)
    assert values[0] == 1.0 and np.isnan(values[1])


# ----------------------------------------------------------------------------
# Retrieval.

def test_nearest_images_matches_brute_force_and_breaks_ties_towards_the_first():
    rng = np.random.default_rng(4)
    gallery = rng.integers(0, 256, (11, 5, 5, 3), dtype=np.uint8)
    gallery[7] = gallery[2]  # a duplicate: the first copy must win
    queries = rng.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8)
    queries[0] = gallery[7]
    index, distance = reconstruction.nearest_images(queries, gallery, chunk_size=4)
    brute = ((queries[:, None].astype(np.int64) - gallery[None].astype(np.int64)) ** 2).sum(axis=(2, 3, 4))
    np.testing.assert_array_equal(index, np.argmin(brute, axis=1))
    np.testing.assert_array_equal(distance, brute.min(axis=1))
    assert index[0] == 2 and distance[0] == 0


def _pairs(voxels, labels, images, views=1, seed=0):
    return PairSet(images=images, shape_index=np.repeat(np.arange(len(voxels)), views), voxels=voxels,
                   labels=labels, class_names=CLASSES,
                   viewpoints=np.zeros((len(images), 2), np.float32), description=f"test pairs {seed}")


def test_retrieval_picks_the_exact_training_shape_when_a_test_render_equals_a_training_render():
    from tf3dgan.data.image_pairs import render_pairs

    voxels, labels = make_synthetic_dataset(3, resolution=16, seed=0, classes=CLASSES)
    train = render_pairs(voxels, labels, CLASSES, views_per_shape=2, image_size=32, seed=5, progress=False)
    picked = np.array([5, 0, 3])  # renders of training shapes 2, 0, 1
    shapes, nearest, distances = reconstruction.retrieve_shapes(train.images[picked], train)
    np.testing.assert_array_equal(nearest, picked)
    np.testing.assert_array_equal(shapes, train.shape_index[picked])
    np.testing.assert_array_equal(distances, 0)


# ----------------------------------------------------------------------------
# The benchmark with a stand-in model.

class TruthWithNoise(reconstruction_models.Reconstructor):
    """Reconstructs the shape a render shows (looked up by its pixels) as probabilities in
    [0.32, 0.42] for occupied voxels and [0, 0.28] for empty ones: only a threshold between
    0.28 and 0.32 gives it an IoU of 1. Records every image it is given."""

    kind = "stand-in"

    def __init__(self, pairs_list, resolution, image_size, noise=0.1, seed=0):
        self.lookup = {}
        for pairs in pairs_list:
            for image, index in zip(pairs.images, pairs.shape_index):
                self.lookup[image.tobytes()] = pairs.voxels[index]
        self.image_size, self.resolution, self.latent_dim = image_size, resolution, 4
        self.identity = {"kind": self.kind, "noise": noise}
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.seen = []

    def _reconstruct(self, images):
        batch = []
        for image in images:
            key = np.round(image * 255).astype(np.uint8).tobytes()
            self.seen.append(key)
            truth = self.lookup[key].astype(np.float32)
            from tf3dgan.data.arrays import resize_grids

            truth = resize_grids(truth[None], self.resolution)[0].astype(np.float32)
            noise = self.rng.random(truth.shape)
            batch.append(np.where(truth > 0.5, 0.32 + self.noise * noise, 0.28 * noise))
        return np.stack(batch).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    train_x, train_y = make_synthetic_dataset(4, resolution=16, seed=0, classes=CLASSES)
    test_x, test_y = make_synthetic_dataset(3, resolution=16, seed=1, classes=CLASSES)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, X_train=train_x, y_train=train_y, X_test=test_x, y_test=test_y,
             class_names=np.array(CLASSES))
    return path


def _settings(path, out, **overrides):
    values = dict(data="npz", data_path=str(path), out=str(out), views_per_shape=2, seed=0,
                  iou_thresholds=(0.2, 0.3, 0.4, 0.5), threshold_images=6, batch_size=4, figure_count=3)
    values.update(overrides)
    return reconstruction_benchmark.ReconstructionSettings(**values)


@pytest.fixture(scope="module")
def stand_in_report(tiny_npz, tmp_path_factory):
    from tf3dgan.config import DataConfig
    from tf3dgan.data import registry
    from tf3dgan.data.image_pairs import render_pairs

    out = tmp_path_factory.mktemp("report")
    settings = _settings(tiny_npz, out)
    rendered = {}
    for split, seed in (("train", 0), ("test", 1)):
        dataset = registry.load_dataset(DataConfig(data="npz", data_path=str(tiny_npz), split=split), 16)
        rendered[split] = render_pairs(dataset.voxels, dataset.labels, dataset.class_names, views_per_shape=2,
                                       image_size=32, seed=seed, progress=False)
    model = TruthWithNoise(list(rendered.values()), resolution=32, image_size=32)
    report = reconstruction_benchmark.run_reconstruction(settings, reconstructor=model, command=["test"])
    return report, model, rendered, out


def test_the_report_has_its_fields_and_is_written(stand_in_report):
    report, _, rendered, out = stand_in_report
    assert tuple(report) == reconstruction_report.REPORT_FIELDS
    assert json.loads((out / reconstruction_report.REPORT_FILE).read_text())["task"] == "reconstruction"
    assert report["model"] == {"kind": "stand-in", "noise": 0.1}
    data = report["data"]
    assert data["splits"]["test"]["count"] == 6 and data["splits"]["train"]["count"] == 8
    assert data["sha256"] and data["renders"]["views_per_shape"] == 2 and data["renders"]["image_size"] == 32
    assert data["renders"]["test"]["images"] == 12 and data["renders"]["test"]["seed"] == 1
    for key in ("ours", "retrieval"):
        method = report["methods"][key]
        assert set(reconstruction_report.METHOD_FIELDS) <= set(method)
        assert sorted(method["per_class"]) == sorted(CLASSES)
        assert all(entry["count"] == 6 for entry in method["per_class"].values())
    assert set(report["settings"]) >= {"views_per_shape", "seed", "iou_thresholds", "average_precision"}
    for name in ("open_model_seconds", "render_train_seconds", "render_test_seconds",
                 "reconstruct_test_seconds", "retrieval_seconds", "total_seconds"):
        assert report["timings"][name] >= 0
    assert os.path.isfile(report["files"]["figure"])


def test_the_reported_means_are_the_per_render_metrics_averaged_per_class(stand_in_report):
    report, _, rendered, _ = stand_in_report
    test = rendered["test"]
    per_render = report["per_render"]
    classes = np.asarray(per_render["class"])
    np.testing.assert_array_equal(classes, test.labels[test.shape_index])
    for key, prefix in (("ours", "ours"), ("retrieval", "retrieval")):
        method = report["methods"][key]
        for metric in ("iou", "ap"):
            values = np.asarray(per_render[f"{prefix}_{metric}"])
            class_means = [values[classes == label].mean() for label in range(len(CLASSES))]
            for label, name in enumerate(CLASSES):
                assert method["per_class"][name][metric] == pytest.approx(class_means[label])
            assert method["mean_over_classes"][metric] == pytest.approx(np.mean(class_means))
    # The retrieval's voxels are a training shape's: its metrics can be recomputed from the index.
    train = rendered["train"]
    retrieved = np.asarray(per_render["retrieved_shape"])
    from tf3dgan.data.arrays import resize_grids

    guess = resize_grids(train.voxels[retrieved], 32).astype(np.float32)
    truth = resize_grids(test.voxels[test.shape_index], 32)
    np.testing.assert_allclose(per_render["retrieval_iou"], _reference_iou(guess, truth, 0.5))
    np.testing.assert_allclose(per_render["retrieval_ap"], [
        average_precision_score(t.ravel(), g.ravel()) for g, t in zip(guess, truth)])


def test_the_iou_threshold_is_chosen_on_training_renders_only(stand_in_report):
    report, model, rendered, _ = stand_in_report
    selection = report["threshold_selection"]
    assert selection["images"] == 6 and selection["grid"] == [0.2, 0.3, 0.4, 0.5]
    assert selection["chosen"] == selection["grid"][int(np.argmax(selection["train_iou"]))]
    # The first images the model saw are the selection's: training renders, no test render.
    train_keys = {image.tobytes() for image in rendered["train"].images}
    test_keys = {image.tobytes() for image in rendered["test"].images}
    assert set(model.seen[:6]) <= train_keys and not set(model.seen[:6]) & test_keys
    # Only 0.3 separates the stand-in's occupied voxels from its empty ones; 0.5 loses them all.
    assert selection["chosen"] == 0.3 and selection["train_iou"][1] == 1.0
    ours = report["methods"]["ours"]["mean_over_classes"]
    assert ours["iou_tuned"] == 1.0 and ours["iou"] == 0.0 and ours["ap"] == 1.0


def test_the_table_has_a_row_per_class_and_the_mean_last(stand_in_report):
    report, _, _, _ = stand_in_report
    text = reconstruction_report.table(report)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| class"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "class", "renders", "ours IoU", "ours IoU@0.3", "ours AP", "retrieval IoU", "retrieval AP"]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| class")]
    assert [row.split("|")[1].strip() for row in rows] == list(CLASSES) + ["mean (over classes)"]


def test_renders_of_another_size_than_the_models_are_refused(stand_in_report):
    _, _, rendered, _ = stand_in_report
    model = TruthWithNoise(list(rendered.values()), resolution=32, image_size=64)
    with pytest.raises(ValueError, match=r"render at image_size=64"):
        reconstruction_benchmark.evaluate_pairs(model, rendered["train"], rendered["test"],
                                      _settings("x", "y"))


# ----------------------------------------------------------------------------
# The command line.

def _cli(tiny_npz, out, model):
    return ["--task", "reconstruction", "--model", str(model), "--data", "npz", "--data_path", str(tiny_npz),
            "--views_per_shape", "1", "--out", str(out)]


def test_a_missing_model_path_exits_2_and_says_what_a_model_is(tiny_npz, tmp_path, capsys):
    assert evaluate.main(_cli(tiny_npz, tmp_path / "o", tmp_path / "nowhere")) == 2
    error = capsys.readouterr().err
    assert f"--model {tmp_path / 'nowhere'} does not exist" in error
    assert "3D-VAE-GAN training workdir" in error and not (tmp_path / "o").exists()


def test_a_directory_that_is_no_model_exits_2(tiny_npz, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert evaluate.main(_cli(tiny_npz, tmp_path / "o", tmp_path / "empty")) == 2
    assert "is not a model: expected a 3D-VAE-GAN" in capsys.readouterr().err


def test_a_3d_gan_export_without_an_encoder_exits_2(tiny_npz, tmp_path, capsys):
    from tf3dgan import config as config_lib
    from tf3dgan import export
    from tf3dgan.models.gan import build_gan

    smoke = config_lib.SMOKE
    path = export.export_model(build_gan(smoke.model, smoke.train), tmp_path / "gan", 1,
                               model_card=export.model_card(smoke, steps_trained=0, data_description="none"))
    assert evaluate.main(_cli(tiny_npz, tmp_path / "o", path)) == 2
    assert "has no 'reconstruct' signature" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# A real 3D-VAE-GAN (16^3 grids, 32x32 images), from a SavedModel and from a workdir.

@pytest.fixture(scope="module")
def vae_gan(tmp_path_factory):
    import keras
    import tensorflow as tf

    from tf3dgan import checkpointing, export
    from tf3dgan import config as config_lib
    from tf3dgan.models.vae_gan import build_vae_gan

    config = config_lib.SMOKE_VAE.replace(data="npz")
    keras.utils.set_random_seed(0)
    model = build_vae_gan(config.model, config.train)
    rng = np.random.default_rng(0)
    for weight in model.generator.weights + model.encoder.weights:
        if weight.path.endswith("moving_mean"):
            weight.assign(rng.normal(0.0, 0.5, weight.shape))
    root = tmp_path_factory.mktemp("vae_gan")
    saved = export.export_model(model, root / "export", 3, model_card=export.model_card(
        config, steps_trained=0, data_description="untrained"))
    workdir = root / "run"
    checkpointing.write_config(workdir, config)
    tf.train.CheckpointManager(checkpointing.make_checkpoint(model), str(workdir / "checkpoints"),
                               max_to_keep=1).save()
    return model, saved, workdir


def test_a_savedmodel_and_a_workdir_reconstruct_as_the_model_in_process(vae_gan):
    model, saved, workdir = vae_gan
    images = np.random.default_rng(5).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    expected = model.reconstruct(images.astype(np.float32) / 255.0, training=False).numpy()
    opened = {path: reconstruction_models.open_reconstructor(path)
              for path in (saved, saved.parent, workdir, workdir / "checkpoints")}
    for path, source in opened.items():
        assert (source.image_size, source.resolution, source.latent_dim) == (32, 16, 8), path
        np.testing.assert_allclose(source.reconstruct(images, batch_size=2), expected, rtol=1e-5, atol=1e-6)
    assert opened[saved].identity["kind"] == "saved_model" and opened[saved].identity["version"] == 3
    assert opened[workdir].identity["kind"] == "workdir" and opened[workdir].identity["step"] == 0
    with pytest.raises(ValueError, match=r"images must be \[N, 32, 32, 3\]"):
        opened[saved].reconstruct(images[:, :16])


def test_a_3d_gan_workdir_is_refused(tmp_path):
    from tf3dgan import checkpointing
    from tf3dgan import config as config_lib

    checkpointing.write_config(tmp_path, config_lib.SMOKE)
    with pytest.raises(reconstruction_models.ReconstructionModelError, match="3D-GAN training run"):
        reconstruction_models.open_reconstructor(tmp_path)


def test_the_command_line_runs_end_to_end_on_a_savedmodel(vae_gan, tiny_npz, tmp_path, capsys):
    _, saved, _ = vae_gan
    out = tmp_path / "out"
    assert evaluate.main(_cli(tiny_npz, out, saved) + ["--threshold_images", "4", "--figure_count", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[-1].startswith("Wall time:")
    assert "| mean (over classes)" in printed.out and "reconstruct [test renders]" in printed.err
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["kind"] == "saved_model" and report["model"]["version"] == 3
    assert report["command"][:5] == ["python", "-m", "tf3dgan.evaluate", "--task", "reconstruction"]
    assert len(report["per_render"]["ours_ap"]) == 6 and (out / "reconstruction.png").is_file()

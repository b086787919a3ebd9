"""The recognition benchmark, end to end: the model against two baselines, in one report.

`run_recognition(settings, model=PATH)` (or `server=..., model_name=...`):

1. opens the model (`tf3dgan.feature_sources.open_model` / `served_model`);
2. loads the training and test splits (`tf3dgan.data.registry`), at the data's own
   resolution, and records their identity (path, sha256, counts per class);
3. extracts features for three feature sets:
       model          the model's discriminator features (layers 2-4, each max-pooled
                      to 2x2x2: `tf3dgan.recognition_features`);
       untrained D    the same features from a randomly initialized discriminator of
                      the same architecture (resolution, base_filters), seeded by --seed;
       raw voxels     the occupancy grid max-pooled to voxel_edge^3 (16^3 by default);
4. runs the protocol of `tf3dgan.recognition` on each: standardization on the training
   split, C by cross-validation on the training split, test accuracy, per class, the
   confusion matrix; then the limited-data curve;
5. writes report.json, confusion_<method>.png and curve.png to settings.out.

With select_checkpoint, a workdir's checkpoint is first chosen on the training split
(`tf3dgan.checkpoint_selection`: by the accuracy on the grids the run held away from the
GAN, or else by CV accuracy; the test split is loaded only afterwards), and the report
adds the candidates and checkpoint_selection.png.

Synthetic data (--data synthetic) has no splits: the training split is generated
with --seed and the test split with --seed + 1, so that they hold different shapes.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import os
import platform
import time
from pathlib import Path

import numpy as np

from tf3dgan import checkpoint_selection, feature_sources, recognition, recognition_report
from tf3dgan.progress import note

SYNTHETIC_TEST_SEED_OFFSET = 1
MANIFEST_FILE = "manifest.json"


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
    """What the benchmark reads, how it classifies and where it writes.

    Attributes:
        data: Dataset name (`tf3dgan.data.registry`), e.g. "modelnet10".
        data_path: Its file or folder.
        classes: Comma-separated classes to keep; empty keeps all.
        out: Directory for report.json and the PNGs (created; files are overwritten).
        svm: The classifier's settings.
        batch_size: Grids per feature-extraction call.
        voxel_edge: The raw-voxel baseline's pooled edge.
        curve_sizes: Training samples per class of the limited-data curve.
        curve_draws: Random draws per curve size.
        seed: Seeds the untrained discriminator, the folds, the curve's draws and
            synthetic data.
        synthetic_shapes_per_class: Size of generated data (--data synthetic only).
    """

    data: str
    data_path: str = ""
    classes: str = ""
    out: str = "evaluation/recognition"
    svm: recognition.SVMSettings = dataclasses.field(default_factory=recognition.SVMSettings)
    batch_size: int = 32
    voxel_edge: int = 16
    curve_sizes: tuple[int, ...] = recognition.DEFAULT_CURVE_SIZES
    curve_draws: int = 5
    seed: int = 0
    synthetic_shapes_per_class: int = 100

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, received {self.batch_size!r}.")
        if self.curve_draws < 1:
            raise ValueError(f"curve_draws must be at least 1, received {self.curve_draws!r}.")
        if any(size < 2 for size in self.curve_sizes):
            raise ValueError(f"curve_sizes must be at least 2 per class, received {self.curve_sizes!r}.")
        if self.svm.seed != self.seed:
            raise ValueError(f"svm.seed ({self.svm.seed}) differs from seed ({self.seed}); "
                             "build the settings with one seed.")


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_split(settings: BenchmarkSettings, split: str, resolution: int | None):
    """Loads one split ("train" or "test") for a model reading `resolution`^3 grids.

    Raises:
        ValueError, FileNotFoundError: as `tf3dgan.data.registry.load_dataset`.
    """
    from tf3dgan.config import DataConfig
    from tf3dgan.data import registry

    seed = settings.seed
    if settings.data == "synthetic" and split == "test":
        seed += SYNTHETIC_TEST_SEED_OFFSET  # other shapes than the training split's
    config = DataConfig(data=settings.data, data_path=settings.data_path, classes=settings.classes,
                        split=split, synthetic_shapes_per_class=settings.synthetic_shapes_per_class)
    # Synthetic shapes are generated at the given resolution; files keep their own.
    return registry.load_dataset(config, resolution or 32, seed)


def load_splits(settings: BenchmarkSettings, resolution: int | None, train=None):
    """Loads the training and test splits for a model reading `resolution`^3 grids.

    Args:
        settings: The benchmark's settings.
        resolution: The model's grid edge (None: the data's own).
        train: The training split, if already loaded.

    Returns:
        (train VoxelDataset, test VoxelDataset).

    Raises:
        ValueError, FileNotFoundError: as `tf3dgan.data.registry.load_dataset`.
    """
    train = train if train is not None else load_split(settings, "train", resolution)
    test = load_split(settings, "test", resolution)
    if train.resolution != test.resolution:
        raise ValueError(f"The training grids are {train.resolution}^3 but the test grids "
                         f"{test.resolution}^3; both splits must have one resolution.")
    return train, test


def data_identity(settings: BenchmarkSettings, train, test, class_names, labels) -> dict:
    """The data's identity for the report: path, sha256, counts per split and class."""
    path = settings.data_path
    sha256, hashed = None, None
    if path and os.path.isfile(path):
        sha256, hashed = file_sha256(path), os.path.abspath(path)
    elif path and os.path.isfile(os.path.join(path, MANIFEST_FILE)):
        hashed = os.path.abspath(os.path.join(path, MANIFEST_FILE))
        sha256 = file_sha256(hashed)

    def split(dataset) -> dict:
        counts = {class_names[i]: int(np.sum(dataset.labels == label)) for i, label in enumerate(labels)}
        return {"count": len(dataset.labels), "per_class": counts,
                "description": dataset.description}

    return {"name": settings.data, "path": os.path.abspath(path) if path else None,
            "sha256": sha256, "sha256_of": hashed, "classes": settings.classes or "all",
            "class_names": list(class_names), "labels": [int(label) for label in labels],
            "resolution": train.resolution,
            "splits": {"train": split(train), "test": split(test)}}


def open_source(model: str | None = None, server: str | None = None, model_name: str | None = None,
                model_version: int | None = None):
    """The model's feature source, from a path or a server.

    Raises:
        ValueError: if both or neither of a path and a server are given, or
            `model_name` is missing with a server.
        ModelPathError: if the path or served model cannot be read.
    """
    if (model is None) == (server is None):
        raise ValueError("Pass either a model path (--model PATH) or a served model "
                         f"(--server host:port --model_name NAME); received model={model!r}, "
                         f"server={server!r}.")
    if server is not None:
        if not model_name:
            raise ValueError(f"--server {server} needs --model_name, the model's name on the server.")
        return feature_sources.served_model(server, model_name, model_version)
    return feature_sources.open_model(model)


def _environment() -> dict:
    versions = {}
    for package in ("tf3dgan", "tensorflow", "keras", "scikit-learn", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), **versions}


def run_recognition(settings: BenchmarkSettings, *, model: str | None = None,
                    server: str | None = None, model_name: str | None = None,
                    model_version: int | None = None, select_checkpoint: bool = False,
                    command=None) -> dict:
    """Runs the whole benchmark (module docstring) and writes its files.

    Args:
        settings: The benchmark's settings.
        model: A model path (`feature_sources.open_model`), or
        server, model_name, model_version: a served model.
        select_checkpoint: `model` is a training workdir: first choose its checkpoint on
            the training split (`tf3dgan.checkpoint_selection`), then benchmark that
            checkpoint.
        command: The command line, recorded in the report.

    Returns:
        The report (also written to settings.out/report.json).

    Raises:
        ValueError: bad settings or data; `feature_sources.ModelPathError` (a ValueError)
            for a model that cannot be read.
        FileNotFoundError: if the data does not exist.
    """
    started = time.perf_counter()
    timings = {}
    selection, train = None, None
    if select_checkpoint:
        if model is None:
            raise ValueError("--select_checkpoint chooses among a training workdir's checkpoints; "
                             "pass --model WORKDIR (a served model is one version: pin it with "
                             "--model_version instead).")
        config, checkpoints = checkpoint_selection.workdir_checkpoints(model)  # fails before any work
        held_out = checkpoint_selection.workdir_holdout(model)
        train = load_split(settings, "train", config.model.resolution)
        selection = checkpoint_selection.select_checkpoint(
            checkpoints, train.voxels, train.labels, settings.svm, batch_size=settings.batch_size,
            held_out=held_out)
        timings["checkpoint_selection_seconds"] = selection["seconds"]
        model = selection["chosen"]["checkpoint"]
    stage = time.perf_counter()
    source = open_source(model, server, model_name, model_version)
    timings["open_model_seconds"] = time.perf_counter() - stage
    note(f"Model: {source.identity.get('kind')} {source.identity.get('path') or source.identity.get('server')}"
         f" ({source.resolution}^3, base_filters {source.base_filters}, {source.num_features:,} features)")

    stage = time.perf_counter()
    train, test = load_splits(settings, source.resolution, train)
    labels = np.union1d(np.unique(train.labels), np.unique(test.labels))
    class_names = [train.class_names[int(label)] for label in labels]
    data = data_identity(settings, train, test, class_names, labels)
    timings["load_data_seconds"] = time.perf_counter() - stage
    note(f"Data: {train.description}\nData: {test.description}")

    sources = {
        "model": source,
        "untrained_d": feature_sources.untrained_discriminator(source.resolution, source.base_filters,
                                                               settings.seed),
        "raw_voxels": feature_sources.VoxelSource(settings.voxel_edge),
    }
    names = {"model": f"model ({_short_identity(source.identity)})",
             "untrained_d": f"untrained D (seed {settings.seed})",
             "raw_voxels": sources["raw_voxels"].name}
    methods = {}
    for key, feature_source in sources.items():
        method_timings = {}
        features = {}
        for split, dataset in (("train", train), ("test", test)):
            features[split], method_timings[f"extract_{split}_seconds"] = feature_sources.extract_features(
                feature_source, dataset.voxels, batch_size=settings.batch_size,
                label=f"features [{names[key]}] {split}")
        method_timings["extract_seconds"] = (method_timings["extract_train_seconds"]
                                             + method_timings["extract_test_seconds"])
        stage = time.perf_counter()
        result = recognition.evaluate_features(features["train"], train.labels, features["test"],
                                               test.labels, settings.svm, labels=labels,
                                               label=f"SVM [{names[key]}]")
        method_timings["classifier_seconds"] = time.perf_counter() - stage
        note(f"SVM [{names[key]}]: test accuracy {result['accuracy']:.4f} at C={result['c']:g}")
        stage = time.perf_counter()
        curve = recognition.limited_data_curve(features["train"], train.labels, features["test"],
                                               test.labels, settings.curve_sizes, settings.curve_draws,
                                               settings.svm, label=f"curve [{names[key]}]")
        method_timings["curve_seconds"] = time.perf_counter() - stage
        methods[key] = recognition_report.jsonable_method(
            names[key], feature_source.identity if key != "model" else {"kind": source.identity["kind"]},
            result, class_names, curve, method_timings)

    out = Path(settings.out)
    report = {
        "task": "recognition",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else None,
        "model": source.identity,
        "data": data,
        "settings": _settings_dict(settings),
        "methods": methods,
        "timings": timings,
        "files": {"report": str(out / recognition_report.REPORT_FILE)},
        "environment": _environment(),
    }
    if selection is not None:
        report["checkpoint_selection"] = selection
    report["files"].update(recognition_report.write_figures(report, out))
    timings["total_seconds"] = time.perf_counter() - started
    recognition_report.write_report(report, out)
    return report


def _short_identity(identity: dict) -> str:
    kind = identity.get("kind")
    if kind in ("workdir", "checkpoint"):
        return f"step {identity['step']}"
    if kind == "saved_model":
        return f"SavedModel v{identity['version']}"
    if kind == "served":
        return f"served v{identity['version']}"
    return str(kind)


def _settings_dict(settings: BenchmarkSettings) -> dict:
    values = dataclasses.asdict(settings)
    values["svm"]["c_grid"] = list(settings.svm.c_grid)
    values["curve_sizes"] = list(settings.curve_sizes)
    values["standardization"] = ("StandardScaler fitted on the samples each SVM is trained on "
                                 "(the fold's training part within CV); never on the test split")
    values["c_selection"] = ("stratified k-fold CV on the training split; best mean fold accuracy, "
                             "the smallest C on a tie")
    values["raw_voxel_pooling"] = f"max-pool to {settings.voxel_edge}^3"
    values["untrained_seed_policy"] = ("keras.utils.set_random_seed(seed) right before building a "
                                       "Discriminator(resolution, base_filters) of the model's architecture")
    values["synthetic_test_seed"] = f"seed + {SYNTHETIC_TEST_SEED_OFFSET} (--data synthetic only)"
    return values

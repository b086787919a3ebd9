"""The single-image reconstruction benchmark (the paper's Table 2): python -m tf3dgan.evaluate --task reconstruction

Given a 3D-VAE-GAN (--model: a training workdir or a SavedModel with the `reconstruct`
signature; `tf3dgan.reconstruction_models`) and a dataset, `run_reconstruction`:

1. loads the training and test splits (`tf3dgan.data.registry`, the data's own resolution,
   which must divide the model's; ground truth is upsampled to the model's grid);
2. renders every shape of both splits (`tf3dgan.data.image_pairs.render_pairs`,
   --views_per_shape random viewpoints per shape at the encoder's image size; the
   training split with seed --seed, the test split with --seed + 1);
3. reconstructs each test render with the model (voxels = G(z_mean), occupancy
   probabilities) and scores it against its shape;
4. scores the nearest-neighbour retrieval baseline on the same renders: for each test
   render, the training render closest in L2 (over all pixels, uint8 values, exact in
   float64; ties go to the first training render), whose shape's voxels are the
   prediction;
5. writes report.json and reconstruction.png to --out and prints the table.

Metrics (`tf3dgan.reconstruction`), per test render, then averaged over the renders of each class (every shape has
--views_per_shape renders, so this is also the mean over shapes); the overall row is the
mean over classes, as the paper's Table 2 reports it (the mean over all renders is in the
JSON report too):

    IoU   |prediction > t AND truth| / |prediction > t OR truth| (1 when both are empty),
          at t = 0.5, and at the threshold of --iou_thresholds with the best mean IoU on
          --threshold_images renders of *training* shapes (never test shapes); the
          retrieval's voxels are {0, 1}, so its IoU does not depend on t.
    AP    average precision over the voxels of the grid: the occupancy probability is the
          score, the ground-truth occupancy the label (scikit-learn's
          average_precision_score: sum over distinct scores s, highest first, of
          (R(s) - R(previous)) * P(s), ties counted together). On the retrieval's binary
          voxels this is P * R + (1 - R) * (occupied fraction): the precision and recall of
          the retrieved shape, plus the step to recall 1 at threshold 0.

Ground-truth grids with no occupied voxel have no AP; the registry drops them on loading
(ModelNet10 has 27 + 7), and any left would be counted out of the means (the report says
how many).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from tf3dgan.argument_types import non_negative_int, positive_int, requested_task
from tf3dgan.progress import Progress, note
from tf3dgan.reconstruction import (
    average_precision,
    iou,
    iou_at_thresholds,
    retrieve_shapes,
)
from tf3dgan.reconstruction_models import PATH_KINDS, Reconstructor, open_reconstructor

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TEST_SEED_OFFSET = 1


@dataclasses.dataclass(frozen=True)
class ReconstructionSettings:
    """What the benchmark reads, how it renders and scores, and where it writes.

    Attributes:
        data: Dataset name (`tf3dgan.data.registry`), e.g. "modelnet10".
        data_path: Its file or folder.
        classes: Comma-separated classes to keep; empty keeps all.
        out: Directory for report.json and reconstruction.png.
        views_per_shape: Renders per shape, in both splits.
        seed: Viewpoints of the training renders (the test renders use seed + 1), the
            training renders that choose the IoU threshold, and synthetic data.
        iou_thresholds: The grid the tuned IoU threshold is chosen from.
        threshold_images: Training renders the threshold is chosen on; 0 reports IoU at
            0.5 only.
        batch_size: Images per model call.
        figure_count: Test renders shown in reconstruction.png.
        synthetic_shapes_per_class: Size of generated data (--data synthetic only).
        render_workers: Processes that render (the renders are the same for any number).
    """

    data: str
    data_path: str = ""
    classes: str = ""
    out: str = "evaluation/reconstruction"
    views_per_shape: int = 4
    seed: int = 0
    iou_thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    threshold_images: int = 200
    batch_size: int = 32
    figure_count: int = 8
    synthetic_shapes_per_class: int = 20
    render_workers: int = 1

    def __post_init__(self) -> None:
        for name in ("views_per_shape", "batch_size", "synthetic_shapes_per_class", "render_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, received {getattr(self, name)!r}.")
        if self.threshold_images < 0 or self.figure_count < 0:
            raise ValueError("threshold_images and figure_count must be >= 0, received "
                             f"{self.threshold_images!r} and {self.figure_count!r}.")
        if not self.iou_thresholds or any(not 0 < value < 1 for value in self.iou_thresholds):
            raise ValueError(f"iou_thresholds must be values in (0, 1), received {self.iou_thresholds!r}.")


def _class_summary(values: dict, classes: np.ndarray, class_names) -> dict:
    """Means per class and overall of per-render metrics {metric: [M]}."""
    per_class = {}
    for label, name in enumerate(class_names):
        mask = classes == label
        if not mask.any():
            continue
        entry = {"count": int(mask.sum())}
        for metric, array in values.items():
            selected = array[mask]
            entry[metric] = float(np.nanmean(selected)) if np.isfinite(selected).any() else None
            missing = int(np.isnan(selected).sum())
            if missing:
                entry[f"{metric}_undefined"] = missing
        per_class[name] = entry
    over_classes = {metric: float(np.mean([entry[metric] for entry in per_class.values()
                                            if entry[metric] is not None]))
                    for metric in values}
    over_renders = {metric: float(np.nanmean(array)) for metric, array in values.items()}
    return {"per_class": per_class, "mean_over_classes": over_classes, "mean_over_renders": over_renders}


def choose_threshold(reconstructor: Reconstructor, train_pairs, settings: ReconstructionSettings) -> dict:
    """The IoU threshold of the grid with the best mean IoU on training renders.

    The renders are a random subset (seeded by settings.seed) of the training split's;
    a tie goes to the threshold nearest 0.5, then the lower.

    Returns:
        {"chosen": t or None (no tuning), "grid", "train_iou" (mean per t), "images"}.
    """
    grid = [float(value) for value in settings.iou_thresholds]
    count = min(settings.threshold_images, len(train_pairs.images))
    if count == 0:
        return {"chosen": None, "grid": grid, "train_iou": None, "images": 0}
    rng = np.random.default_rng(settings.seed)
    picked = np.sort(rng.choice(len(train_pairs.images), size=count, replace=False))
    resolution = reconstructor.resolution
    values, progress = [], Progress("threshold [training renders]", count)
    for start in range(0, count, settings.batch_size):
        rows = picked[start:start + settings.batch_size]
        predicted = reconstructor.reconstruct(train_pairs.images[rows], settings.batch_size)
        truth = _upsample(train_pairs.voxels[train_pairs.shape_index[rows]], resolution)
        values.append(iou_at_thresholds(predicted, truth, grid))
        progress.update(len(rows))
    progress.finish()
    means = np.concatenate(values).mean(axis=0)
    best = np.flatnonzero(means >= means.max() - 1e-12)
    chosen = min((grid[index] for index in best), key=lambda value: (abs(value - 0.5), value))
    return {"chosen": chosen, "grid": grid, "train_iou": [float(value) for value in means],
            "images": int(count)}


def _upsample(voxels: np.ndarray, resolution: int) -> np.ndarray:
    from tf3dgan.data.arrays import resize_grids

    return resize_grids(np.asarray(voxels), resolution)


def evaluate_pairs(reconstructor: Reconstructor, train_pairs, test_pairs,
                   settings: ReconstructionSettings) -> dict:
    """Scores the model and the retrieval baseline on rendered pairs.

    Args:
        reconstructor: The model.
        train_pairs: `PairSet` of the training split (the retrieval gallery, and the
            renders the IoU threshold is chosen on).
        test_pairs: `PairSet` of the test split, rendered at the model's image size.
        settings: The benchmark's settings.

    Returns:
        {"methods": {"ours": ..., "retrieval": ...}, "threshold_selection", "figure"
        (the first test render of each class, in turn: images, predictions), "timings"}.

    Raises:
        ValueError: if the renders are not at the model's image size, or the data's
            grids do not divide the model's resolution.
    """
    size = reconstructor.image_size
    for name, pairs in (("training", train_pairs), ("test", test_pairs)):
        if pairs.images.shape[1:] != (size, size, 3):
            raise ValueError(f"The {name} renders are {pairs.images.shape[1:]}, the model reads "
                             f"[{size}, {size}, 3] images; render at image_size={size}.")
    timings = {}
    resolution = reconstructor.resolution
    thresholds = [0.5] + [float(value) for value in settings.iou_thresholds]

    stage = time.perf_counter()
    selection = choose_threshold(reconstructor, train_pairs, settings)
    timings["threshold_selection_seconds"] = time.perf_counter() - stage
    if selection["chosen"] is not None:
        note(f"IoU threshold {selection['chosen']:g}: mean IoU "
             f"{max(selection['train_iou']):.4f} on {selection['images']} training renders")

    test_count = len(test_pairs.images)
    figure_rows = _figure_rows(test_pairs, settings.figure_count)
    wanted = {int(row) for row in figure_rows}
    ours_iou = np.empty((test_count, len(thresholds)))
    ours_ap = np.empty(test_count)
    figure_predictions = {}
    progress = Progress("reconstruct [test renders]", test_count)
    for start in range(0, test_count, settings.batch_size):
        rows = np.arange(start, min(start + settings.batch_size, test_count))
        predicted = reconstructor.reconstruct(test_pairs.images[rows], settings.batch_size)
        truth = _upsample(test_pairs.voxels[test_pairs.shape_index[rows]], resolution)
        ours_iou[rows] = iou_at_thresholds(predicted, truth, thresholds)
        ours_ap[rows] = average_precision(predicted, truth)
        for offset, row in enumerate(rows):
            if int(row) in wanted:
                figure_predictions[int(row)] = predicted[offset]
        progress.update(len(rows))
    timings["reconstruct_test_seconds"] = progress.finish()

    stage = time.perf_counter()
    retrieved, nearest, distances = retrieve_shapes(test_pairs.images, train_pairs,
                                                    label="retrieval [nearest training render]")
    retrieval_iou = np.empty(test_count)
    retrieval_ap = np.empty(test_count)
    progress = Progress("retrieval [scores]", test_count)
    for start in range(0, test_count, settings.batch_size):
        rows = np.arange(start, min(start + settings.batch_size, test_count))
        predicted = _upsample(train_pairs.voxels[retrieved[rows]], resolution).astype(np.float32)
        truth = _upsample(test_pairs.voxels[test_pairs.shape_index[rows]], resolution)
        retrieval_iou[rows] = iou(predicted, truth, 0.5)
        retrieval_ap[rows] = average_precision(predicted, truth)
        progress.update(len(rows))
    progress.finish()
    timings["retrieval_seconds"] = time.perf_counter() - stage

    classes = np.asarray(test_pairs.labels)[np.asarray(test_pairs.shape_index)]
    ours_values = {"iou": ours_iou[:, 0], "ap": ours_ap}
    if selection["chosen"] is not None:
        ours_values["iou_tuned"] = ours_iou[:, 1 + settings.iou_thresholds.index(selection["chosen"])]
    test_iou_grid = {f"{value:g}": float(ours_iou[:, 1 + index].mean())
                     for index, value in enumerate(settings.iou_thresholds)}
    methods = {
        "ours": {"name": "3D-VAE-GAN", **_class_summary(ours_values, classes, test_pairs.class_names),
                 "test_iou_per_threshold": test_iou_grid},
        "retrieval": {"name": "nearest-neighbour retrieval",
                      **_class_summary({"iou": retrieval_iou, "ap": retrieval_ap}, classes,
                                       test_pairs.class_names),
                      "exact_shape_matches": int(np.sum(_same_grids(
                          train_pairs.voxels[retrieved], test_pairs.voxels[test_pairs.shape_index]))),
                      "zero_distance_matches": int(np.sum(distances == 0))},
    }
    figure = {
        "rows": [int(row) for row in figure_rows],
        "images": test_pairs.images[figure_rows] if len(figure_rows) else None,
        "ours": np.stack([figure_predictions[int(row)] for row in figure_rows]) if len(figure_rows) else None,
        "retrieval": train_pairs.voxels[retrieved[figure_rows]] if len(figure_rows) else None,
        "truth": test_pairs.voxels[test_pairs.shape_index[figure_rows]] if len(figure_rows) else None,
        "viewpoints": np.asarray(test_pairs.viewpoints)[figure_rows] if len(figure_rows) else None,
        "threshold": selection["chosen"] if selection["chosen"] is not None else 0.5,
        "class_names": [test_pairs.class_names[int(label)] for label in classes[figure_rows]],
        "ours_iou": [float(ours_iou[row, 0]) for row in figure_rows],
        "retrieval_iou": [float(retrieval_iou[row]) for row in figure_rows],
    }
    per_render = {"class": classes.tolist(), "ours_iou": ours_iou[:, 0].tolist(), "ours_ap": ours_ap.tolist(),
                  "retrieval_iou": retrieval_iou.tolist(), "retrieval_ap": retrieval_ap.tolist(),
                  "retrieved_shape": retrieved.tolist(), "nearest_render": nearest.tolist()}
    return {"methods": methods, "threshold_selection": selection, "figure": figure,
            "per_render": per_render, "timings": timings}


def _same_grids(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.all(first.reshape(len(first), -1) == second.reshape(len(second), -1), axis=1)


def _figure_rows(test_pairs, count: int) -> np.ndarray:
    """The first test render of each class, in class order, then the second of each ..."""
    if count == 0:
        return np.zeros(0, np.int64)
    classes = np.asarray(test_pairs.labels)[np.asarray(test_pairs.shape_index)]
    queues = [list(np.flatnonzero(classes == label)) for label in np.unique(classes)]
    rows = []
    while len(rows) < count and any(queues):
        for queue in queues:
            if queue and len(rows) < count:
                rows.append(queue.pop(0))
    return np.asarray(rows, np.int64)


def _render(dataset, settings: ReconstructionSettings, image_size: int, seed: int, split: str):
    from tf3dgan.data.image_pairs import render_pairs

    note(f"Rendering the {split} split: {len(dataset.voxels)} shapes x {settings.views_per_shape} views "
         f"at {image_size}x{image_size} (seed {seed})")
    return render_pairs(dataset.voxels, dataset.labels, dataset.class_names,
                        views_per_shape=settings.views_per_shape, image_size=image_size, seed=seed,
                        progress=True, workers=settings.render_workers,
                        description=f"{settings.data} {split} split")


def run_reconstruction(settings: ReconstructionSettings, *, model=None, reconstructor=None,
                       command=None) -> dict:
    """Runs the whole benchmark (module docstring) and writes its files.

    Args:
        settings: The benchmark's settings.
        model: A model path (`open_reconstructor`), or
        reconstructor: an open `Reconstructor`.
        command: The command line, recorded in the report.

    Returns:
        The report (also written to settings.out/report.json).

    Raises:
        ValueError: bad settings or data; `ReconstructionModelError` (a ValueError) for a
            model that cannot reconstruct.
        FileNotFoundError: if the data does not exist.
    """
    from tf3dgan import reconstruction_report
    from tf3dgan.recognition_benchmark import _environment, data_identity, load_splits

    if (model is None) == (reconstructor is None):
        raise ValueError("Pass either model (a path) or reconstructor, not both or neither.")
    started = time.perf_counter()
    timings = {}
    if reconstructor is None:
        reconstructor = open_reconstructor(model)
    timings["open_model_seconds"] = time.perf_counter() - started
    note(f"Model: {reconstructor.identity.get('kind')} {reconstructor.identity.get('path', '')} "
         f"({reconstructor.image_size}x{reconstructor.image_size} images -> {reconstructor.resolution}^3)")

    stage = time.perf_counter()
    # load_splits reads data, data_path, classes, seed and synthetic_shapes_per_class.
    train, test = load_splits(settings, reconstructor.resolution)
    if train.resolution > reconstructor.resolution or reconstructor.resolution % train.resolution:
        raise ValueError(
            f"The data's grids are {train.resolution}^3 but the model makes {reconstructor.resolution}^3 "
            "grids; the ground truth is only upsampled by an integer factor. Evaluate on data at "
            f"{reconstructor.resolution}^3 or a divisor of it.")
    labels = np.union1d(np.unique(train.labels), np.unique(test.labels))
    class_names = [train.class_names[int(label)] for label in labels]
    data = data_identity(settings, train, test, class_names, labels)
    timings["load_data_seconds"] = time.perf_counter() - stage

    renders = {}
    for split, dataset, seed in (("train", train, settings.seed), ("test", test, settings.seed + TEST_SEED_OFFSET)):
        stage = time.perf_counter()
        renders[split] = _render(dataset, settings, reconstructor.image_size, seed, split)
        timings[f"render_{split}_seconds"] = time.perf_counter() - stage
    data["renders"] = {split: {"images": int(len(pairs.images)), "seed": seed,
                               "description": getattr(pairs, "description", "")}
                       for (split, pairs), seed in zip(renders.items(),
                                                       (settings.seed, settings.seed + TEST_SEED_OFFSET))}
    data["renders"].update(views_per_shape=settings.views_per_shape, image_size=reconstructor.image_size)

    result = evaluate_pairs(reconstructor, renders["train"], renders["test"], settings)
    timings.update(result["timings"])
    out = Path(settings.out)
    report = {
        "task": "reconstruction",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else None,
        "model": reconstructor.identity,
        "data": data,
        "settings": _settings_dict(settings),
        "threshold_selection": result["threshold_selection"],
        "methods": result["methods"],
        "per_render": result["per_render"],
        "timings": timings,
        "files": {"report": str(out / reconstruction_report.REPORT_FILE)},
        "environment": _environment(),
    }
    stage = time.perf_counter()
    if result["figure"]["rows"]:
        report["files"]["figure"] = str(reconstruction_report.write_figure(
            result["figure"], out / reconstruction_report.FIGURE_FILE))
    timings["figure_seconds"] = time.perf_counter() - stage
    timings["total_seconds"] = time.perf_counter() - started
    reconstruction_report.write_report(report, out)
    return report


def _settings_dict(settings: ReconstructionSettings) -> dict:
    values = dataclasses.asdict(settings)
    values["iou_thresholds"] = list(settings.iou_thresholds)
    values["test_seed"] = settings.seed + TEST_SEED_OFFSET
    values["iou"] = ("prediction > t (strictly) against the ground truth; 1 when both are empty; "
                     "t = 0.5, and t chosen on training renders (threshold_selection)")
    values["average_precision"] = ("sklearn.metrics.average_precision_score over the voxels of each "
                                   "grid (probability as score, ground-truth occupancy as label), "
                                   "per render, averaged per class; overall = mean over classes")
    values["retrieval"] = ("the training shape of the training render nearest in L2 over uint8 pixels "
                           "(exact, ties to the first); its {0, 1} voxels are the prediction, so its AP "
                           "is P*R + (1-R)*(occupied fraction)")
    return values


# ----------------------------------------------------------------------------
# Command line (python -m tf3dgan.evaluate --task reconstruction).

def requested(argv=None) -> bool:
    """Whether a `python -m tf3dgan.evaluate` command line asks for --task reconstruction."""
    return requested_task(argv) == "reconstruction"


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated thresholds in (0, 1), e.g. 0.3,0.4,0.5, received {text!r}") from None
    if not values or any(not 0 < value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected thresholds in (0, 1), received {text!r}")
    return values


USAGE = """Single-image 3D reconstruction: python -m tf3dgan.evaluate --task reconstruction --model PATH --data NAME

Renders the test shapes (never seen in training) from --views_per_shape random viewpoints,
reconstructs each render with the 3D-VAE-GAN, and reports mean IoU and average precision per
class and overall (the form of the paper's Table 2) beside the nearest-neighbour retrieval
baseline (the training shape whose render is closest in L2), in one run. See
tf3dgan/reconstruction_benchmark.py for the exact definitions.

Writes --out/report.json (per class and overall, per render, threshold selection, settings,
timings, model and data identity) and --out/reconstruction.png (test renders, our
reconstruction, the retrieved shape, the truth); prints the table last; progress on stderr.

Example:
  python -m tf3dgan.evaluate --task reconstruction --model runs/mn10_vae/export/4000 \\
      --data modelnet10 --data_path ../shared/data/modelnet10_32.npz --out runs/mn10_vae/reconstruction

Exit codes: 0 done; 2 a model, data or flag that cannot be used (the message says why);
1 a failure while running.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tf3dgan.evaluate --task reconstruction",
                                     description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("reconstruction",), default="reconstruction")
    parser.add_argument("--model", required=True, help=f"The model: {PATH_KINDS}.")
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="Dataset name: modelnet10, npz, cache, tfds, synthetic ...")
    data.add_argument("--data_path", default="", help="The dataset's file or folder.")
    data.add_argument("--classes", default="", help="Comma-separated classes to keep (default: all).")
    data.add_argument("--synthetic_shapes_per_class", type=positive_int, default=20,
                      help="With --data synthetic: shapes per class in each split.")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--views_per_shape", type=positive_int, default=4,
                          help="Renders per shape, training and test splits (default: %(default)s).")
    protocol.add_argument("--seed", type=int, default=0,
                          help="Viewpoints of the training renders (test: seed + 1) and the threshold renders.")
    protocol.add_argument("--iou_thresholds", type=_thresholds, default=DEFAULT_THRESHOLDS,
                          help="Grid the tuned IoU threshold is chosen from (default: 0.1,...,0.9).")
    protocol.add_argument("--threshold_images", type=non_negative_int, default=200,
                          help="Training renders the IoU threshold is chosen on; 0: IoU at 0.5 only "
                               "(default: %(default)s).")
    protocol.add_argument("--batch_size", type=positive_int, default=32, help="Images per model call.")
    protocol.add_argument("--render_workers", type=positive_int, default=1,
                          help="Processes that render the splits (same renders for any number; "
                               "default: %(default)s).")
    protocol.add_argument("--figure_count", type=non_negative_int, default=8,
                          help="Test renders in reconstruction.png (default: %(default)s).")
    parser.add_argument("--out", default="evaluation/reconstruction",
                        help="Directory for report.json and reconstruction.png (default: %(default)s).")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not os.path.exists(args.model) and not os.path.exists(args.model + ".index"):
        # Checked before TensorFlow is imported, so that a typo fails at once.
        print(f"error: --model {args.model} does not exist. Pass {PATH_KINDS}.", file=sys.stderr)
        return 2
    try:
        settings = ReconstructionSettings(
            data=args.data, data_path=args.data_path, classes=args.classes, out=args.out,
            views_per_shape=args.views_per_shape, seed=args.seed, iou_thresholds=tuple(args.iou_thresholds),
            threshold_images=args.threshold_images, batch_size=args.batch_size,
            figure_count=args.figure_count, synthetic_shapes_per_class=args.synthetic_shapes_per_class,
            render_workers=args.render_workers)
        report = run_reconstruction(settings, model=args.model, command=[
            "python", "-m", "tf3dgan.evaluate"] + list(sys.argv[1:] if argv is None else argv))
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from tf3dgan import reconstruction_report

    print(reconstruction_report.table(report), flush=True)
    return 0

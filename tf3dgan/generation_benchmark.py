"""Generation quality of a trained 3D-GAN: python -m tf3dgan.generation_benchmark --model PATH
--reference_data NAME --reference_path P

Draws --num_samples shapes from the model (sample i from seed --seed + i, from the prior
the model was trained with) and measures them against the reference set (the
--reference_data split --split, --classes only) with the metrics of `tf3dgan.metrics`:
COV, MMD and 1-NNA with the IoU distance and with the Chamfer distance on surface
points, the occupancy JSD, and the Fréchet distance on the features of the project's
voxel classifier (--classifier, built by python -m pipelines.train_feature_classifier;
skipped with a note without it). Two references go through the same run, the same
metrics and the same number of shapes:

    noise (floor)      uniform noise thresholded so that its mean occupancy is the
                       reference set's (each voxel occupied with that probability)
    training (ceiling) shapes of the same classes from the --train_split split, drawn
                       without replacement (all of them if there are fewer)

The number of shapes defaults to the size of the reference set, so that 1-NNA's ideal
is 50%; --max_reference draws a random subset of a large reference set (the Chamfer
distances take time in the square of the set sizes: about a minute per set for 300
shapes of 512 points on two cores).

Reading the floor: with the IoU distance, a noise grid is nearer to a dense reference
shape (a dresser) than to another noise grid, so the noise row's 1-NNA (IoU) can come out
near 50% although every noise grid is misclassified (and every reference shape
correctly); the Chamfer 1-NNA, COV, MMD and the Frechet distance put noise at the
bottom. Read 1-NNA next to COV and MMD. Reference and training grids coarser than the model's are upsampled, as the
training pipeline does. Prints the table last and writes --out/report.json (metrics,
settings, timings, model and data identity, command).

Examples:
  python -m tf3dgan.generation_benchmark --model runs/chairs --reference_data modelnet10 \\
      --reference_path ../shared/data/modelnet10_32.npz --classes chair --split test \\
      --classifier models/feature_classifier --out runs/chairs/generation
  python -m tf3dgan.generation_benchmark --model 127.0.0.1:8500 --model_name tf3dgan \\
      --reference_data modelnet10 --reference_path ../shared/data/modelnet10_32.npz --classes chair

`python -m tf3dgan.evaluate --task generation ...` runs this with the same flags
(--data and --data_path are accepted for --reference_data and --reference_path).

Exit codes: 0 done; 2 a model, data or flag that cannot be used (the message says why);
1 a failure while running.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time

from tf3dgan.argument_types import positive_int, requested_task

SETS = (("noise", "noise (floor)"), ("model", "model"), ("training", "training (ceiling)"))
ROWS = (  # key, label, better, format
    ("cov_iou", "COV (IoU)", "higher", "percent"),
    ("mmd_iou", "MMD (IoU distance)", "lower", "number"),
    ("1nna_iou", "1-NNA (IoU)", "50%", "percent"),
    ("cov_chamfer", "COV (Chamfer)", "higher", "percent"),
    ("mmd_chamfer", "MMD (Chamfer, x1e3)", "lower", "milli"),
    ("1nna_chamfer", "1-NNA (Chamfer)", "50%", "percent"),
    ("jsd", "JSD (occupancy)", "lower", "number"),
    ("stray_voxels", "stray voxels", "reference's", "percent"),
    ("frechet", "Frechet (classifier)", "lower", "number"),
)


class UsageError(Exception):
    """A flag, model or dataset that cannot be used (exit code 2)."""


def requested(argv=None) -> bool:
    """Whether a `python -m tf3dgan.evaluate` command line asks for --task generation."""
    return requested_task(argv) == "generation"


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, received {text!r}")
    return value


def _distances(text: str) -> tuple:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or any(name not in ("iou", "chamfer") for name in names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of iou,chamfer, received {text!r}")
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tf3dgan.generation_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("generation",), default="generation",
                        help="Accepted for python -m tf3dgan.evaluate's command line; only generation.")
    parser.add_argument("--model", required=True,
                        help="Training workdir, checkpoint prefix, SavedModel version dir, model base path, "
                             "or host:port of a TF-Serving gRPC server.")
    parser.add_argument("--model_name", default="default", help="The served model's name (host:port only).")
    parser.add_argument("--reference_data", "--data", dest="reference_data", required=True,
                        help="Dataset name of the reference set: modelnet10, npz, cache, tfds, synthetic ...")
    parser.add_argument("--reference_path", "--data_path", dest="reference_path", default="",
                        help="The dataset's file or folder.")
    parser.add_argument("--classes", default="", help="Comma-separated classes (default: all).")
    parser.add_argument("--split", default="test", help="Split of the reference set (default %(default)s).")
    parser.add_argument("--train_split", default="train",
                        help="Split the ceiling's shapes come from (default %(default)s).")
    parser.add_argument("--max_reference", type=positive_int, default=None,
                        help="Use a random subset of at most this many reference shapes (default: all); "
                             "the Chamfer distance's time grows with the square of the set sizes.")
    parser.add_argument("--num_samples", type=positive_int, default=None,
                        help="Shapes per set (default: the size of the reference set).")
    parser.add_argument("--classifier", default=None,
                        help="Feature classifier SavedModel for the Frechet distance (default: skipped).")
    parser.add_argument("--distances", type=_distances, default=("iou", "chamfer"),
                        help="Distances of COV/MMD/1-NNA (default iou,chamfer).")
    parser.add_argument("--chamfer_points", type=positive_int, default=1024,
                        help="Surface points per shape for the Chamfer distance (default %(default)s).")
    parser.add_argument("--surface", choices=("voxel", "mesh"), default="voxel",
                        help="Chamfer points on surface voxel centres or on marching-cubes meshes "
                             "(default %(default)s).")
    parser.add_argument("--threshold", type=_threshold, default=0.5,
                        help="Occupancy threshold of the samples (default %(default)s).")
    parser.add_argument("--seed", type=int, default=0,
                        help="Sample i uses seed --seed + i; also seeds noise, the ceiling's draw and the "
                             "surface points (default %(default)s).")
    parser.add_argument("--synthetic_shapes_per_class", type=positive_int, default=100,
                        help="With --reference_data synthetic: shapes per class (default %(default)s).")
    parser.add_argument("--out", default="evaluation/generation",
                        help="Directory for report.json (default %(default)s).")
    return parser.parse_args(argv)


def _load_split(args, split: str, resolution: int, seed: int):
    from tf3dgan.config import DataConfig
    from tf3dgan.data import registry
    from tf3dgan.latent import upsample_to

    config = DataConfig(data=args.reference_data, data_path=args.reference_path, classes=args.classes,
                        split=split, synthetic_shapes_per_class=args.synthetic_shapes_per_class)
    dataset = registry.load_dataset(config, resolution, seed)
    return upsample_to(dataset.voxels, resolution), dataset.description


def noise_floor(count: int, resolution: int, occupancy: float, seed: int):
    """Uniform noise grids thresholded at 1 - occupancy: each voxel occupied with that probability.

    Returns:
        bool [count, R, R, R].
    """
    import numpy as np

    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
    return rng.random((count, resolution, resolution, resolution), dtype=np.float32) > 1.0 - occupancy


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace, argv=None) -> dict:
    """Runs the benchmark and writes report.json; returns the report.

    Raises:
        UsageError: for a model, data or flags that cannot be used.
    """
    if not os.path.exists(args.model) and not os.path.exists(args.model + ".index") and ":" not in args.model:
        # Checked before TensorFlow is imported, so that a typo fails at once.
        raise UsageError(f"--model {args.model} does not exist. Pass a training workdir, a checkpoint "
                         "prefix, a SavedModel version directory, a model base path or host:port.")
    if args.classifier is not None and not os.path.isdir(args.classifier):
        raise UsageError(f"--classifier {args.classifier} is not a directory. Build one with python -m "
                         "pipelines.train_feature_classifier, or leave --classifier out to skip the "
                         "Frechet distance.")
    import numpy as np

    from tf3dgan import metrics
    from tf3dgan.model_source import ModelSourceError, load_model_source

    started = time.time()
    classifier = None
    try:
        source = load_model_source(args.model, model_name=args.model_name)
        if args.classifier is not None:
            from tf3dgan.feature_classifier import load_feature_classifier

            classifier = load_feature_classifier(args.classifier)
        resolution = source.resolution
        reference, reference_description = _load_split(args, args.split, resolution, args.seed + 1)
        training, training_description = _load_split(args, args.train_split, resolution, args.seed)
    except (ModelSourceError, ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    available = len(reference)
    if args.max_reference and available > args.max_reference:
        subset = np.random.default_rng([int(args.seed) & 0xFFFFFFFF, 13]).choice(
            available, args.max_reference, replace=False)
        reference = reference[np.sort(subset)]
    count = args.num_samples or len(reference)
    print(f"Model: {source.kind} {source.identity.get('path') or source.identity.get('target')} "
          f"({resolution}^3, prior {source.prior})\nReference: {reference_description}\n"
          f"Training: {training_description}", flush=True)

    timings = {}
    clock = time.time()
    seeds = np.arange(args.seed, args.seed + count, dtype=np.int64)
    try:
        _, generated = source.sample(seeds)
    finally:
        source.close()
    timings["sampling"] = time.time() - clock
    occupancy = float(reference.mean())
    rng = np.random.default_rng([int(args.seed) & 0xFFFFFFFF, 11])
    ceiling_indices = np.sort(rng.choice(len(training), min(count, len(training)), replace=False))
    sets = {"noise": noise_floor(count, resolution, occupancy, args.seed),
            "model": generated,
            "training": training[ceiling_indices]}

    clock = time.time()
    try:
        reference_set = metrics.ReferenceSet(
            reference, threshold=0.5, distances=args.distances, chamfer_points=args.chamfer_points,
            surface=args.surface, features=classifier.features if classifier else None, seed=args.seed)
    except ValueError as error:
        raise UsageError(f"The reference set cannot be used: {error}") from error
    timings["reference"] = time.time() - clock
    results = {}
    for name, _ in SETS:
        clock = time.time()
        grids = metrics.binarize(sets[name], args.threshold if name == "model" else 0.5, name)
        try:
            values = reference_set.compare(grids)
        except ValueError as error:
            # e.g. a Frechet distance of badly conditioned covariances: the rest still stands.
            values = {"error": str(error)}
        timings[name] = time.time() - clock
        results[name] = {key: _finite_or_none(value) for key, value in values.items()}
        results[name]["mean_occupancy"] = float(grids.mean())
        print(f"  {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)

    report = {
        "task": "generation",
        "model": source.identity,
        "reference": {"data": args.reference_data, "path": args.reference_path, "classes": args.classes,
                      "split": args.split, "count": len(reference), "available": available,
                      "description": reference_description,
                      "mean_occupancy": occupancy,
                      "stray_voxels": metrics.stray_voxel_fraction(reference)},
        "training": {"split": args.train_split, "available": len(training), "used": len(ceiling_indices),
                     "description": training_description},
        "classifier": (None if classifier is None else {"path": str(classifier.directory), **{
            key: classifier.card.get(key) for key in ("test_accuracy", "feature_dim", "resolution",
                                                      "class_names", "train_data")}}),
        "frechet_note": (None if classifier is not None else
                         "skipped: no --classifier (build one with python -m pipelines.train_feature_classifier)"),
        "settings": {"num_samples": count, "seeds": [int(seeds[0]), int(seeds[-1])],
                     "threshold": args.threshold, "distances": list(args.distances),
                     "chamfer_points": args.chamfer_points, "surface": args.surface, "seed": args.seed,
                     "noise": "uniform noise thresholded at 1 - the reference's mean occupancy",
                     "chamfer_units": "mean squared distance, coordinates in units of the grid edge"},
        "results": results,
        "seconds": {key: round(value, 2) for key, value in {**timings, "total": time.time() - started}.items()},
        "command": ["python", "-m", "tf3dgan.generation_benchmark"] + list(sys.argv[1:] if argv is None else argv),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
    return report


def _format(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "percent":
        return f"{100 * value:.1f}%"
    if kind == "milli":
        return f"{1e3 * value:.3f}"
    return f"{value:.4f}"


def table(report: dict) -> str:
    """The metrics table of a report: one row per metric, one column per set."""
    headers = ["metric", "better"] + [label for _, label in SETS]
    rows = []
    for key, label, better, kind in ROWS:
        if not any(key in report["results"][name] for name, _ in SETS) and key != "frechet":
            continue
        cells = [_format(report["results"][name].get(key), kind) for name, _ in SETS]
        if key == "frechet" and report.get("frechet_note"):
            cells = ["skipped"] * len(SETS)
        rows.append([label, better] + cells)
    widths = [max(len(str(row[column])) for row in [headers] + rows) for column in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in [headers] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    settings, reference = report["settings"], report["reference"]
    subset = (f" (a random subset of {reference['available']})"
              if reference.get("available", reference["count"]) != reference["count"] else "")
    notes = [f"{settings['num_samples']} shapes per set against {reference['count']} reference shapes{subset} "
             f"({reference['data']} {reference['split']}{', ' + reference['classes'] if reference['classes'] else ''})."]
    notes.append("1-NNA: 50% is ideal, 100% means separable sets, below 50% means copies of the reference. "
                 "Chamfer: mean squared distance, coordinates in units of the grid edge.")
    if reference.get("stray_voxels") is not None:
        notes.append(f"Stray voxels: the share of a shape's voxels outside its largest 26-connected component "
                     f"(raw samples); the reference shapes' own: {100 * reference['stray_voxels']:.1f}%.")
    if report.get("frechet_note"):
        notes.append(f"Frechet distance {report['frechet_note']}.")
    for name, _ in SETS:
        if "error" in report["results"][name]:
            notes.append(f"{name}: {report['results'][name]['error']}")
        elif report["results"][name].get("empty_samples"):
            notes.append(f"{name}: {report['results'][name]['empty_samples']} empty shapes.")
    return "\n".join(lines + [""] + notes)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run(args, argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {os.path.join(args.out, 'report.json')} in {report['seconds']['total']:.0f} s.\n", flush=True)
    print(table(report), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

"""Benchmarks of a trained 3D-GAN: python -m tf3dgan.evaluate --model PATH --data NAME --data_path PATH

--task generation hands the command line to `tf3dgan.generation_benchmark` (COV, MMD,
1-NNA, JSD and a Frechet distance against a reference set; see its --help).

--task reconstruction hands it to `tf3dgan.reconstruction_benchmark`: a 3D-VAE-GAN reconstructs
renders of the test shapes; mean IoU and average precision per class and overall, beside a
nearest-neighbour retrieval baseline (see python -m tf3dgan.evaluate --task reconstruction --help).

--task recognition (the default): the paper's recognition benchmark. The
discriminator's features (layers 2-4, each max-pooled to 2x2x2) are extracted for the
training and test splits, standardized on the training split, and a linear SVM is
trained with C chosen by cross-validation on the training split alone; its test
accuracy (overall, per class, confusion matrix) is reported beside two baselines in the
same run: the raw voxels (max-pooled to --voxel_edge^3) and an untrained, randomly
initialized discriminator of the same architecture (seeded by --seed). Then the
limited-data curve: the same with --curve_sizes training samples per class,
--curve_draws random draws each.

--model is a training workdir, its checkpoints/ directory, a checkpoint prefix, an
exported SavedModel version directory or a model base path (its newest version); or
--server host:port --model_name NAME asks a served model (TF Serving's gRPC API).
With --select_checkpoint, --model is a training workdir and its checkpoint is chosen first,
on the training split alone (tf3dgan.checkpoint_selection): by the accuracy on the shapes a
run trained with --holdout_fraction kept away from the GAN, otherwise by CV accuracy.

Writes to --out: report.json (accuracies, per-class, confusion matrices, CV scores,
settings, timings, model and data identity), confusion_<method>.png and curve.png;
prints the tables on stdout, the summary table last; progress goes to stderr.

Examples:
  python -m tf3dgan.evaluate --model runs/mn10_cpu32 --data modelnet10 \\
      --data_path ../shared/data/modelnet10_32.npz --out runs/mn10_cpu32/recognition
  python -m tf3dgan.evaluate --model runs/mn10_flip --select_checkpoint --data modelnet10 \\
      --data_path ../shared/data/modelnet10_32.npz --out runs/mn10_flip/recognition
  python -m tf3dgan.evaluate --model runs/mn10_cpu32/export/2000 --data modelnet10 \\
      --data_path ../shared/data/modelnet10_32.npz --curve_draws 3
  python -m tf3dgan.evaluate --server 127.0.0.1:8500 --model_name tf3dgan \\
      --data modelnet10 --data_path ../shared/data/modelnet10_32.npz

Exit codes: 0 done; 2 a model, data or flag that cannot be used (the message says why);
1 a failure while running.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tf3dgan.argument_types import positive_int

TASKS = ("recognition", "generation", "reconstruction")


def _number_list(kind):
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__}s (e.g. 10,25,50), received {text!r}") from None
        if not values or any(value <= 0 for value in values):
            raise argparse.ArgumentTypeError(f"expected positive values, received {text!r}")
        return values
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    from tf3dgan import recognition

    parser = argparse.ArgumentParser(prog="python -m tf3dgan.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="recognition",
                        help="What to measure: recognition, generation (see python -m "
                             "tf3dgan.generation_benchmark --help) or reconstruction (see "
                             "python -m tf3dgan.evaluate --task reconstruction --help).")
    model = parser.add_argument_group("model (one of)")
    model.add_argument("--model", help="Workdir, checkpoints/ dir, checkpoint prefix, SavedModel version "
                                       "dir or model base path.")
    model.add_argument("--server", help="host:port of a TF Serving gRPC API serving the model.")
    model.add_argument("--model_name", help="The served model's name (with --server).")
    model.add_argument("--model_version", type=positive_int, default=None,
                       help="A served version to pin (default: the newest).")
    model.add_argument("--select_checkpoint", action="store_true",
                       help="--model is a training workdir: score every checkpoint on the training "
                            "split (held-out accuracy for a run trained with --holdout_fraction, "
                            "else CV accuracy), then benchmark the best (the test split is not "
                            "read for the choice; see tf3dgan.checkpoint_selection).")
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="Dataset name: modelnet10, npz, cache, tfds, synthetic ...")
    data.add_argument("--data_path", default="", help="The dataset's file or folder.")
    data.add_argument("--classes", default="", help="Comma-separated classes to keep (default: all).")
    data.add_argument("--synthetic_shapes_per_class", type=positive_int, default=100,
                      help="With --data synthetic: shapes per class in each split.")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--c_grid", type=_number_list(float),
                          default=recognition.DEFAULT_C_GRID,
                          help="Values of C tried by cross-validation (default: %(default)s).")
    protocol.add_argument("--cv_folds", type=positive_int, default=5,
                          help="Stratified CV folds on the training split (default: %(default)s).")
    protocol.add_argument("--solver", choices=recognition.SOLVERS, default="gram",
                          help="gram: libsvm's linear SVM on the Gram matrix (fast, default); "
                               "liblinear: LinearSVC(dual=True) (slow, see tf3dgan.recognition).")
    protocol.add_argument("--multiclass", choices=recognition.MULTICLASS_SCHEMES, default="ovr",
                          help="ovr: one binary SVM per class, as liblinear (default); ovo: one per "
                               "pair of classes, libsvm's own (--solver gram only).")
    protocol.add_argument("--max_iter", type=positive_int, default=1000, help="liblinear's iteration limit.")
    protocol.add_argument("--tol", type=float, default=1e-3, help="The solver's tolerance.")
    protocol.add_argument("--voxel_edge", type=positive_int, default=16,
                          help="The raw-voxel baseline max-pools each grid to this edge (default 16).")
    protocol.add_argument("--curve_sizes", type=_number_list(int), default=recognition.DEFAULT_CURVE_SIZES,
                          help="Training samples per class on the limited-data curve (default: "
                               "%(default)s; the full split is always added).")
    protocol.add_argument("--curve_draws", type=positive_int, default=5,
                          help="Random draws per curve size (default: %(default)s).")
    protocol.add_argument("--seed", type=int, default=0,
                          help="Seeds the untrained discriminator, the CV folds and the curve's draws.")
    protocol.add_argument("--batch_size", type=positive_int, default=32, help="Grids per feature batch.")
    parser.add_argument("--out", default="evaluation/recognition",
                        help="Directory for report.json and the PNGs (default: %(default)s).")
    return parser.parse_args(argv)


class UsageError(Exception):
    """A flag, model or dataset that cannot be used (exit code 2)."""


def _check(args: argparse.Namespace) -> None:
    if args.task not in TASKS:
        raise UsageError(f"Unknown --task {args.task!r}; expected one of {TASKS}.")
    if (args.model is None) == (args.server is None):
        raise UsageError("Pass either --model PATH or --server host:port --model_name NAME "
                         f"(received --model {args.model!r}, --server {args.server!r}).")
    if args.server is not None and not args.model_name:
        raise UsageError(f"--server {args.server} needs --model_name, the model's name on the server.")
    if args.model is not None and not os.path.exists(args.model) and not os.path.exists(args.model + ".index"):
        # Checked before TensorFlow is imported, so that a typo fails at once.
        raise UsageError(f"--model {args.model} does not exist. Pass a training workdir, a checkpoint "
                         "prefix, a SavedModel version directory or a model base path.")


def run(args: argparse.Namespace, argv=None) -> dict:
    """Runs the task; returns its report.

    Raises:
        UsageError: for a flag, model or data that cannot be used.
    """
    _check(args)
    from tf3dgan import recognition, recognition_benchmark

    try:
        settings = recognition_benchmark.BenchmarkSettings(
            data=args.data, data_path=args.data_path, classes=args.classes, out=args.out,
            svm=recognition.SVMSettings(c_grid=tuple(args.c_grid), cv_folds=args.cv_folds,
                                        solver=args.solver, multiclass=args.multiclass,
                                        max_iter=args.max_iter, tol=args.tol,
                                        seed=args.seed),
            batch_size=args.batch_size, voxel_edge=args.voxel_edge,
            curve_sizes=tuple(args.curve_sizes), curve_draws=args.curve_draws, seed=args.seed,
            synthetic_shapes_per_class=args.synthetic_shapes_per_class)
        return recognition_benchmark.run_recognition(
            settings, model=args.model, server=args.server, model_name=args.model_name,
            model_version=args.model_version, select_checkpoint=args.select_checkpoint,
            command=["python", "-m", "tf3dgan.evaluate"] + list(sys.argv[1:] if argv is None else argv))
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error


def main(argv=None) -> int:
    from tf3dgan import generation_benchmark, reconstruction_benchmark

    if generation_benchmark.requested(argv):
        return generation_benchmark.main(argv)
    if reconstruction_benchmark.requested(argv):
        return reconstruction_benchmark.main(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run(args, argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from tf3dgan import recognition_report

    print(recognition_report.tables(report), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

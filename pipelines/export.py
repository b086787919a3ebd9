"""Export a trained 3D-GAN for TF Serving: python -m pipelines.export --workdir W --model_base_path M

Restores the newest checkpoint of the training run in W (outside any
distribution strategy) and writes it, with every serving signature, a model
card and warm-up requests, to M/<version>/, atomically. The version defaults to
the checkpoint's training step; an existing version is never overwritten.

Examples:
  python -m pipelines.export --workdir runs/default --model_base_path models/tf3dgan
  python -m pipelines.export --workdir runs/paper64 --model_base_path /models/tf3dgan --version 7
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tf3dgan.argument_types import positive_int


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.export", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True,
                        help="The training run's workdir (holds config.json and checkpoints/).")
    parser.add_argument("--model_base_path", required=True,
                        help="TF Serving's model base path; the model goes to <model_base_path>/<version>/.")
    parser.add_argument("--version", type=positive_int, default=None,
                        help="Version directory to write (default: the checkpoint's training step).")
    return parser.parse_args(argv)


class UsageError(Exception):
    """A workdir or destination the export cannot use (exit code 2)."""


def _read_config(workdir: Path):
    from tf3dgan import checkpointing
    from tf3dgan.config import ExperimentConfig

    path = workdir / checkpointing.CONFIG_FILE
    if not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is not a directory; pass the workdir of a training run.")
    if not path.is_file():
        raise UsageError(
            f"{workdir} has no {checkpointing.CONFIG_FILE}, so it is not a tf3dgan training workdir; "
            "pass the --workdir a `python -m pipelines.train` run wrote.")
    try:
        return ExperimentConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise UsageError(f"{path} is not a tf3dgan config ({error}).") from error


def _data_description(data_config) -> str:
    parts = [data_config.data]
    if data_config.data_path:
        parts.append(data_config.data_path)
    parts.append(f"split={data_config.split}")
    parts.append(f"classes={data_config.classes or 'all'}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> Path:
    """Restores and exports; returns the version directory.

    Raises:
        UsageError: a workdir without config or checkpoints, a checkpoint that
            does not fit the config, a bad or existing destination.
    """
    workdir = Path(args.workdir)
    config = _read_config(workdir)
    # Imported here so that --help and flag errors do not wait for TensorFlow.
    import keras
    import tensorflow as tf

    from tf3dgan import checkpointing, export

    try:
        if args.version is not None:
            export.check_destination(args.model_base_path, args.version)
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from error
    checkpoint_dir = workdir / "checkpoints"
    if tf.train.latest_checkpoint(str(checkpoint_dir)) is None:
        raise UsageError(
            f"{workdir} has no checkpoint in {checkpoint_dir}; train first "
            f"(python -m pipelines.train --workdir {workdir}).")

    # The run's precision: the export computes as the trained model did.
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.train.precision)
    try:
        try:
            gan, restored = checkpointing.restore_run(config, checkpoint_dir)
        except (checkpointing.CheckpointMismatchError, RuntimeError) as error:
            raise UsageError(str(error)) from error
        step = int(gan.step_counter.numpy())
        version = args.version if args.version is not None else step
        if version <= 0:
            raise UsageError(f"The checkpoint {restored} is at step {step}; pass --version.")
        print(f"Restored {restored} (step {step}).", flush=True)
        card = export.model_card(config, steps_trained=step,
                                 data_description=_data_description(config.data))
        try:
            return export.export_model(gan, args.model_base_path, version, model_card=card)
        except (ValueError, FileExistsError, PermissionError) as error:
            raise UsageError(str(error)) from error
    finally:
        keras.config.set_dtype_policy(previous_policy)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a failure while writing (disk full ...): nothing was published
        print(f"error: the export failed and left no version directory: {error}", file=sys.stderr)
        return 1
    from tf3dgan import export

    names = sorted(export.read_model_card(path)["signatures"])
    print(f"SavedModel: {path}\nSignatures: {', '.join(names)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

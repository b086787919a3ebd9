"""Checkpoints of a GAN3D: what is saved, where, and how a run resumes.

A checkpoint holds everything a resumed run needs to continue exactly: both
networks (with BatchNorm statistics), both optimizers (moments and iteration
counts), the step counter and the discriminator gate. TensorFlow writes the
data files first and then swaps the `checkpoint` index file atomically, so a
write interrupted by a crash leaves the previous checkpoint as the latest; if
the latest is unreadable anyway (a damaged disk, a copied-in file), restoring
falls back to the one before it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import tensorflow as tf

from tf3dgan.config import ExperimentConfig

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class CheckpointMismatchError(ValueError):
    """The workdir holds a run of another architecture."""


def _by_path(variables) -> dict:
    # Keras 3 models and optimizers are not tf.train.Checkpoint dependencies
    # themselves, so their tf.Variables are listed explicitly, named by path.
    named = {variable.path: getattr(variable, "value", variable) for variable in variables}
    if len(named) != len(variables):
        raise ValueError("Two variables share a path; checkpoint names would collide.")
    return named


def make_checkpoint(gan) -> tf.train.Checkpoint:
    """A checkpoint of every variable a resumed run needs."""
    return tf.train.Checkpoint(
        generator=_by_path(gan.generator.weights),
        discriminator=_by_path(gan.discriminator.weights),
        g_optimizer=_by_path(gan.g_optimizer.variables),
        d_optimizer=_by_path(gan.d_optimizer.variables),
        gan=_by_path([gan.step_counter, gan.d_gate_open]),
    )


def check_workdir_config(workdir: Path, config: ExperimentConfig) -> None:
    """Refuses to resume a run whose model differs from `config`'s; records the config.

    The model section decides the checkpoint's shapes; the training and data
    sections may change between resumptions (e.g. more steps).

    Raises:
        CheckpointMismatchError: if the workdir's model config differs.
    """
    path = workdir / CONFIG_FILE
    if path.exists():
        try:
            stored = ExperimentConfig.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise CheckpointMismatchError(
                f"{path} is not a tf3dgan config ({error}). Use a new --workdir, or remove the file "
                "if the workdir holds no checkpoint you want to keep.") from error
        if stored.model != config.model:
            differences = ", ".join(
                f"{name}={getattr(stored.model, name)!r} (this run: {getattr(config.model, name)!r})"
                for name in stored.model.__dataclass_fields__
                if getattr(stored.model, name) != getattr(config.model, name))
            raise CheckpointMismatchError(
                f"The workdir {workdir} holds a checkpoint of another architecture: {differences}. "
                "Use a new --workdir, or run with the same model settings to resume it.")


def write_config(workdir: Path, config: ExperimentConfig) -> None:
    """Writes config.json atomically."""
    workdir.mkdir(parents=True, exist_ok=True)
    temporary = workdir / (CONFIG_FILE + ".tmp")
    temporary.write_text(config.to_json())
    os.replace(temporary, workdir / CONFIG_FILE)


def restore_latest(manager: tf.train.CheckpointManager, checkpoint: tf.train.Checkpoint) -> str | None:
    """Restores the newest readable checkpoint; returns its path, or None for a fresh run.

    Raises:
        CheckpointMismatchError: if a checkpoint exists but does not fit the model.
    """
    candidates = list(reversed(manager.checkpoints))
    errors = []
    for path in candidates:
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except (tf.errors.NotFoundError, tf.errors.DataLossError, tf.errors.OutOfRangeError,
                IndexError) as error:  # IndexError: a data file cut short
            # An unreadable file: try the previous checkpoint.
            logger.warning("Checkpoint %s is unreadable (%s); trying the previous one.", path, error)
            errors.append(f"{path}: {error}")
        except (ValueError, AssertionError, tf.errors.InvalidArgumentError) as error:
            raise CheckpointMismatchError(
                f"The checkpoint {path} does not fit this model ({str(error).splitlines()[0]}). "
                "It was written by another architecture: use a new --workdir.") from error
    if errors:
        raise RuntimeError("No checkpoint in the workdir could be read:\n" + "\n".join(errors))
    return None

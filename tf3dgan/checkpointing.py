"""Checkpoints of a GAN3D or VAEGAN3D: what is saved, where, and how a run resumes.

A checkpoint holds everything a resumed run needs to continue exactly: the
networks (with BatchNorm statistics; the encoder too for a VAEGAN3D), their
optimizers (moments and iteration counts), the step counter and the
discriminator gate. TensorFlow writes the
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


def make_checkpoint(gan, include_average: bool = True) -> tf.train.Checkpoint:
    """A checkpoint of every variable a resumed run needs (a GAN3D's, or a VAEGAN3D's).

    Args:
        gan: The model.
        include_average: Include G's weight average, when the model keeps one (a
            checkpoint written before the average was turned on has none).
    """
    parts = {
        "generator": _by_path(gan.generator.weights),
        "discriminator": _by_path(gan.discriminator.weights),
        "g_optimizer": _by_path(gan.g_optimizer.variables),
        "d_optimizer": _by_path(gan.d_optimizer.variables),
        "gan": _by_path([gan.step_counter, gan.d_gate_open]),
    }
    if include_average and getattr(gan, "generator_ema", None) is not None:
        parts["generator_ema"] = _by_path(gan.generator_ema.weights)
    encoder = getattr(gan, "encoder", None)
    if encoder is not None:
        parts.update(encoder=_by_path(encoder.weights),
                     e_optimizer=_by_path(gan.e_optimizer.variables))
    return tf.train.Checkpoint(**parts)


def holds_average(path: str) -> bool:
    """Whether the checkpoint `path` holds a generator weight average."""
    return any(name.startswith("generator_ema/") for name, _ in tf.train.list_variables(path))


def restore(gan, path: str, checkpoint: tf.train.Checkpoint | None = None) -> None:
    """Restores the checkpoint `path` into `gan`, every variable of it matched.

    A checkpoint written without G's weight average (before `ema_decay` was turned
    on) restores everything else, and the average starts from G's restored weights.

    Args:
        gan: The model.
        path: The checkpoint.
        checkpoint: `make_checkpoint(gan)` as a manager saves it, if there is one: a
            complete restore goes through it, so that its save counter continues.

    Raises:
        AssertionError, ValueError or tf.errors.OpError: as `tf.train.Checkpoint.restore`.
    """
    with_average = holds_average(path)
    if getattr(gan, "generator_ema", None) is None or with_average:
        target = checkpoint or make_checkpoint(gan)
    else:
        target = make_checkpoint(gan, include_average=False)
    target.restore(path).assert_existing_objects_matched()
    if getattr(gan, "generator_ema", None) is not None and not with_average:
        start_average(gan)


def start_average(gan) -> None:
    """Sets G's weight average to G's weights (a run that starts, or turns the average on)."""
    gan.generator_ema.set_weights(gan.generator.get_weights())


def _checkpoint_of(source: str) -> tuple[str, Path | None]:
    """The checkpoint `source` names, and the workdir it belongs to (None if unknown)."""
    path = Path(source)
    if path.is_dir():
        for folder, workdir in ((path / "checkpoints", path), (path, path.parent)):
            latest = tf.train.latest_checkpoint(str(folder))
            if latest:
                return latest, workdir
        raise FileNotFoundError(
            f"init_from={source!r} is a folder without checkpoints. Pass a 3D-GAN workdir (it holds "
            "checkpoints/), its checkpoints folder, or a checkpoint such as "
            "runs/gan/checkpoints/ckpt-1200.")
    if not tf.io.gfile.exists(f"{source}.index"):
        raise FileNotFoundError(
            f"init_from={source!r} is neither a folder nor a checkpoint ({source}.index does not "
            "exist). Pass a 3D-GAN workdir, its checkpoints folder, or a checkpoint such as "
            "runs/gan/checkpoints/ckpt-1200.")
    return source, path.parent.parent if path.parent.name == "checkpoints" else None


def load_networks(gan, source: str, model_config=None) -> str:
    """Loads a trained 3D-GAN's generator and discriminator weights (BatchNorm statistics included).

    The optimizers, the step counter and the gate are not loaded: this starts a
    new run (a 3D-VAE-GAN from a trained 3D-GAN), it does not resume one.

    Args:
        gan: The model whose `generator` and `discriminator` receive the weights.
        source: A workdir (its newest checkpoint), a checkpoints folder, or a
            checkpoint path (the prefix, e.g. runs/gan/checkpoints/ckpt-1200).
        model_config: This run's `ModelConfig`; when given and the source's workdir
            has a config.json, their architectures are compared first, for a clear
            message.

    Returns:
        The checkpoint path that was loaded.

    Raises:
        FileNotFoundError: if `source` holds no checkpoint.
        CheckpointMismatchError: if its networks have another architecture.
    """
    checkpoint_path, source_workdir = _checkpoint_of(source)
    config_path = source_workdir / CONFIG_FILE if source_workdir is not None else None
    if model_config is not None and config_path is not None and config_path.exists():
        try:
            stored = ExperimentConfig.from_dict(json.loads(config_path.read_text())).model
        except (ValueError, TypeError) as error:
            raise CheckpointMismatchError(f"{config_path} is not a tf3dgan config ({error}).") from error
        differences = ", ".join(
            f"{name}={getattr(stored, name)!r} (this run: {getattr(model_config, name)!r})"
            for name in ("resolution", "latent_dim", "base_filters", "discriminator_normalization",
                         "rotation_head")
            if getattr(stored, name) != getattr(model_config, name))
        if differences:
            raise CheckpointMismatchError(
                f"init_from={source!r} holds networks of another architecture: {differences}. "
                "Train this model with the same --resolution, --latent_dim and --base_filters, "
                "or start from another 3D-GAN.")
        if stored.prior != model_config.prior:
            logger.warning("init_from's 3D-GAN was trained with prior=%r; this run samples %r.",
                           stored.prior, model_config.prior)
    _check_shapes(checkpoint_path, source, {"generator": gan.generator.weights,
                                            "discriminator": gan.discriminator.weights})
    networks = tf.train.Checkpoint(generator=_by_path(gan.generator.weights),
                                   discriminator=_by_path(gan.discriminator.weights))
    try:
        networks.read(checkpoint_path).expect_partial().assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        raise CheckpointMismatchError(
            f"The checkpoint {checkpoint_path} (init_from={source!r}) does not fit this model's "
            f"generator and discriminator ({str(error).splitlines()[0]}). Start from a 3D-GAN "
            "trained with the same --resolution, --latent_dim and --base_filters.") from error
    return checkpoint_path


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


def restore_latest(manager: tf.train.CheckpointManager, checkpoint: tf.train.Checkpoint, gan) -> str | None:
    """Restores the newest readable checkpoint of `manager` (which saves `checkpoint`, made
    by `make_checkpoint(gan)`) into `gan` (see `restore`); returns its path, or None for a
    fresh run.

    Raises:
        CheckpointMismatchError: if a checkpoint exists but does not fit the model.
    """
    candidates = list(reversed(manager.checkpoints))
    errors = []
    for path in candidates:
        try:
            restore(gan, path, checkpoint)
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


def restore_run(config: ExperimentConfig, checkpoint_dir: Path, checkpoint_prefix: str | None = None):
    """Builds a training run's model and restores one of its checkpoints, for use after training.

    The model (GAN3D or VAEGAN3D, as the config says) is built outside any
    strategy and in the run's precision, so it computes as the run did; the
    global dtype policy is put back afterwards (the layers keep theirs).

    Args:
        config: The run's config (its config.json).
        checkpoint_dir: The run's checkpoints/ folder.
        checkpoint_prefix: A checkpoint of that run (.../ckpt-1200); None restores the newest.

    Returns:
        (model, path of the restored checkpoint).

    Raises:
        CheckpointMismatchError: no checkpoint, or one that does not fit the config's model.
        RuntimeError: checkpoints exist but none can be read.
        ValueError: when called inside a distribution strategy's scope.
    """
    import keras

    from tf3dgan.models.builders import build_model

    if tf.distribute.has_strategy():
        raise ValueError("Restore a model for use after training outside any distribution strategy's scope.")
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.train.precision)
    try:
        model = build_model(config.model, config.train)
        checkpoint = make_checkpoint(model)
        if checkpoint_prefix is None:
            manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=None)
            restored = restore_latest(manager, checkpoint, model)
            if restored is None:
                raise CheckpointMismatchError(
                    f"{Path(checkpoint_dir).parent} has no checkpoint in {checkpoint_dir}; train first "
                    f"(python -m pipelines.train --workdir {Path(checkpoint_dir).parent}).")
        else:
            try:
                restore(model, checkpoint_prefix, checkpoint)
            except (ValueError, AssertionError, tf.errors.OpError) as error:
                raise CheckpointMismatchError(
                    f"The checkpoint {checkpoint_prefix} does not fit the model of its run's "
                    f"{CONFIG_FILE} ({str(error).splitlines()[0]}); pass a checkpoint of that run."
                ) from error
            restored = checkpoint_prefix
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return model, restored


def _checkpoint_key(section: str, variable_path: str) -> str:
    # How tf.train.Checkpoint names a dict entry's value: "/" in the key is written ".S"
    # and "." as "..".
    escaped = variable_path.replace(".", "..").replace("/", ".S")
    return f"{section}/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


def _check_shapes(checkpoint_path: str, source: str, sections: dict) -> None:
    """Raises CheckpointMismatchError naming the first variables missing or of another shape.

    Checked before restoring, because a failed restore leaves no clue but its
    first error and floods the log with warnings.
    """
    stored = dict(tf.train.list_variables(checkpoint_path))
    problems = []
    for section, variables in sections.items():
        for variable in variables:
            key = _checkpoint_key(section, variable.path)
            if key not in stored:
                problems.append(f"{variable.path} is not in it")
            elif list(stored[key]) != list(variable.shape):
                problems.append(f"{variable.path} has shape {list(stored[key])} there, "
                                f"{list(variable.shape)} here")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise CheckpointMismatchError(
            f"The checkpoint {checkpoint_path} (init_from={source!r}) does not fit this model's "
            f"generator and discriminator: {shown}. Start from a 3D-GAN trained with the same "
            "--resolution, --latent_dim and --base_filters.")

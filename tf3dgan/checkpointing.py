"""Checkpoints of a GAN3D or VAEGAN3D: what is saved, where, and how a run resumes.

A checkpoint holds everything a resumed run needs to continue exactly: the
networks (with BatchNorm statistics; the encoder too for a VAEGAN3D), their
optimizers (moments and iteration counts), the step counter and the
discriminator gate. TensorFlow writes the
data files first and then swaps the `checkpoint` state file atomically, so a
write interrupted by a crash leaves the previous checkpoint as the latest; if
the latest is unreadable anyway (a damaged disk, a copied-in file), restoring
falls back to the one before it. The checkpoints are found by their own files
(`ckpt-<step>.index`) as well as by the state file, so a run whose state file is
lost or damaged resumes instead of starting over on top of them.

A run's settings: config.json keeps those its checkpoints started from, and
config_history.jsonl gets a line for each start of the run (the step it started
at, and its settings); the model section may not change between them.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
from pathlib import Path

import tensorflow as tf

from tf3dgan import atomic_files
from tf3dgan.config import ExperimentConfig

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CONFIG_HISTORY_FILE = "config_history.jsonl"
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of the checkpoints it keeps
# The names tf.train.CheckpointManager gives (its default checkpoint_name, "ckpt").
CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)")


class CheckpointMismatchError(ValueError):
    """The workdir holds a run of another architecture."""


class CheckpointUnreadableError(RuntimeError):
    """The workdir holds checkpoints, but none of them can be read."""


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


def checkpoint_files(directory: str | os.PathLike) -> list[str]:
    """The checkpoints in `directory` as their files show them (one `ckpt-<step>.index` each).

    The state file is not read: this is what the folder holds even when that file
    is lost or damaged.

    Args:
        directory: A run's checkpoints/ folder (it may not exist).

    Returns:
        The checkpoint prefixes (e.g. .../checkpoints/ckpt-1200), in increasing step order.
    """
    folder = Path(directory)
    found = []
    for index in folder.glob("ckpt-*.index") if folder.is_dir() else ():
        match = CHECKPOINT_NAME.fullmatch(index.name[:-len(".index")])
        if match:
            found.append((int(match.group(1)), str(folder / match.group(0))))
    return [path for _, path in sorted(found)]


def _step_of(path: str) -> int:
    match = CHECKPOINT_NAME.fullmatch(os.path.basename(path))
    return int(match.group(1)) if match else -1


def _listed_checkpoints(directory: Path) -> tuple[list[str] | None, str]:
    """The checkpoints the state file lists (None if it cannot be read), and why it cannot."""
    if not (directory / STATE_FILE).exists():
        return None, "is missing"
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except ValueError:  # an empty file or one without a latest checkpoint
        state = None
    if state is None:  # TensorFlow returns None for a file it cannot parse or read
        return None, "is unreadable"
    listed = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [os.path.normpath(path) for path in listed], ""


def repair_state(directory: str | os.PathLike) -> str | None:
    """Makes the state file of `directory` list every checkpoint whose files are there.

    tf.train.CheckpointManager knows its folder's checkpoints from the state file
    alone: without it (lost, damaged, or not updated by a crash just after a save) a
    run would start over, then overwrite and delete the checkpoints as it reached
    their steps. The state file is written again from the `ckpt-<step>.index` files,
    so that `restore_latest` tries them all, newest first, and the manager keeps and
    removes them as usual.

    Args:
        directory: A run's checkpoints/ folder; call it only from the process that
            saves into it.

    Returns:
        What was repaired, as a sentence for the user; None if the state file was in order
        or there are no checkpoint files.

    Raises:
        OSError: if the state file cannot be written.
    """
    directory = Path(directory)
    state = directory / STATE_FILE
    on_disk = checkpoint_files(directory)
    listed, problem = _listed_checkpoints(directory)
    if not on_disk:
        if listed is None and state.exists():
            # It names nothing that can be restored, and an empty one stops the manager.
            state.unlink()
            return f"{state} {problem} and there are no checkpoint files; removed it."
        return None
    if listed is not None:
        unlisted = [Path(path).name for path in on_disk if os.path.normpath(path) not in listed]
        if not unlisted:
            return None
        problem = f"does not list {', '.join(unlisted)}"
    names = [Path(path).name for path in on_disk]
    # The manager's own format, with paths relative to the folder as it writes them. It
    # keeps (and later removes) only checkpoints younger than last_preserved_timestamp.
    times = [os.path.getmtime(f"{path}.index") for path in on_disk]
    lines = ([f'model_checkpoint_path: "{names[-1]}"']
             + [f'all_model_checkpoint_paths: "{name}"' for name in names]
             + [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in times]
             + [f"last_preserved_timestamp: {min(times) - 1.0!r}"])
    with atomic_files.atomic_output(state, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return (f"{state} {problem}; found the checkpoints {', '.join(names)} by their files and listed "
            "them in it again: the newest that reads is resumed.")


def remove_stale_staging(directory: str | os.PathLike) -> list[Path]:
    """Removes what interrupted saves left in a checkpoints folder; returns what was removed.

    TensorFlow writes a checkpoint's data in `<prefix>_temp/` before moving it into
    place, and the state file as `checkpoint.tmp<hex>` before renaming it; a process
    killed in between leaves them, and nothing else reads or removes them.

    Args:
        directory: A run's checkpoints/ folder; call it only while nothing saves into it
            (a run, as it starts, for its own folder).

    Returns:
        The removed paths, sorted.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    stale = sorted({*folder.glob("ckpt-*_temp*"), *folder.glob(f"{STATE_FILE}.tmp*")})
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return stale


def check_workdir_config(workdir: Path, config: ExperimentConfig) -> None:
    """Refuses to resume a run whose model differs from `config`'s.

    The model section decides the checkpoint's shapes; the training and data
    sections may change between resumptions (e.g. more steps). Only a workdir that
    holds checkpoints is checked: a config.json without them was left by a start
    that failed before its first checkpoint, and `record_start` replaces it.

    Raises:
        CheckpointMismatchError: if the workdir's checkpoints were written with another
            model config, or its config.json cannot be read.
    """
    path = workdir / CONFIG_FILE
    if path.exists() and checkpoint_files(workdir / "checkpoints"):
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


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def recorded_starts(workdir: str | os.PathLike) -> list[dict]:
    """The lines of the workdir's config_history.jsonl: {"step", "started_at", "config"} each.

    A line that does not parse (one cut short by a crash while it was appended) is
    skipped.
    """
    path = Path(workdir) / CONFIG_HISTORY_FILE
    starts = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else ():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
            starts.append(entry)
    return starts


def _differences(previous: dict, current: dict) -> str:
    """The settings of `current` (a config's to_dict()) that differ from `previous`'s."""
    changed = []
    for section, values in current.items():
        if not isinstance(values, dict):
            if previous.get(section) != values:
                changed.append(f"{section}={values!r} (was {previous.get(section)!r})")
            continue
        before = previous.get(section) if isinstance(previous.get(section), dict) else {}
        for name, value in values.items():
            if name not in before:
                changed.append(f"{name}={value!r} (not recorded before)")
            elif before[name] != value:
                changed.append(f"{name}={value!r} (was {before[name]!r})")
    return ", ".join(changed)


def record_start(workdir: Path, config: ExperimentConfig, step: int, resumed: bool) -> str | None:
    """Records the settings of a start of the run in `workdir`, at `step`.

    config.json keeps the settings the run's checkpoints started from: a fresh start
    writes it (replacing one left by a start that wrote no checkpoint), a resumed
    start only if it is missing. config_history.jsonl gets a line for every start
    ({"step", "started_at", "config"}) and is only ever appended to, so the run's
    record of its own settings survives resuming with another --batch_size, learning
    rate or data. Call it once the start-up has succeeded, just before training.

    Args:
        workdir: The run's workdir.
        config: This start's settings.
        step: The step it starts at (0, or the restored checkpoint's).
        resumed: Whether it resumes from a checkpoint.

    Returns:
        A note for the user (a config.json replaced or written again, or settings that
        differ from the previous start's), or None.

    Raises:
        OSError: if the files cannot be written.
    """
    path, history = workdir / CONFIG_FILE, workdir / CONFIG_HISTORY_FILE
    current = config.to_dict()
    notes = []
    if not resumed:
        if path.exists() and _read_json(path) != current:
            notes.append(f"{path} was left by a start that wrote no checkpoint; this run's settings "
                         "replace it.")
        write_config(workdir, config)
    else:
        starts = recorded_starts(workdir)
        previous = starts[-1]["config"] if starts else _read_json(path)
        if not path.exists():
            write_config(workdir, config)
            notes.append(f"{path} was missing; it now holds this start's settings (the run's first "
                         "ones are unknown).")
        differences = _differences(previous, current) if isinstance(previous, dict) else ""
        if differences:
            notes.append(f"Resuming at step {step} with other settings than the run's previous start: "
                         f"{differences}. {path} keeps the run's first settings; {history} records "
                         "every start's.")
    # In this order (not sorted), so that each line starts with its step.
    entry = {"step": int(step),
             "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "config": current}
    # A line cut short by a crash must not swallow this one.
    torn = history.exists() and history.stat().st_size and not history.read_bytes().endswith(b"\n")
    with open(history, "a", encoding="utf-8") as handle:
        handle.write(("\n" if torn else "") + json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return " ".join(notes) or None


def latest_config(workdir: str | os.PathLike, config: ExperimentConfig) -> ExperimentConfig:
    """The settings of the run's latest start, as config_history.jsonl records them.

    config.json keeps the first start's settings; a later start may have changed
    training settings that decide how the model is built (ema_decay, precision).

    Args:
        workdir: The run's workdir.
        config: Its config.json.

    Returns:
        The latest recorded start's config when it has `config`'s model; `config` otherwise.
    """
    for entry in reversed(recorded_starts(workdir)):
        try:
            latest = ExperimentConfig.from_dict(entry["config"])
        except (ValueError, TypeError):
            continue
        return latest if latest.model == config.model else config
    return config


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def restore_latest(manager: tf.train.CheckpointManager, checkpoint: tf.train.Checkpoint, gan) -> str | None:
    """Restores the newest readable checkpoint of `manager` (which saves `checkpoint`, made
    by `make_checkpoint(gan)`) into `gan` (see `restore`); returns its path, or None for a
    fresh run.

    The candidates are the checkpoints the manager lists and those whose files are in
    its directory (`checkpoint_files`: the state file may be lost), newest step first;
    one that cannot be read (a damaged index, a data file cut short) gives way to the
    one before it.

    Raises:
        CheckpointMismatchError: if a checkpoint exists but does not fit the model.
        CheckpointUnreadableError: if checkpoints exist but none can be read.
    """
    candidates = {os.path.normpath(path): path
                  for path in [*manager.checkpoints, *checkpoint_files(manager.directory)]}
    errors = []
    for path in sorted(candidates.values(), key=_step_of, reverse=True):
        try:
            # Opening a checkpoint reads its index and nothing of the model: a failure
            # here is the file's (a damaged index raises a bare OpError, "not an sstable").
            tf.train.load_checkpoint(path)
            restore(gan, path, checkpoint)
            return path
        except (ValueError, AssertionError, tf.errors.InvalidArgumentError) as error:
            raise CheckpointMismatchError(
                f"The checkpoint {path} does not fit this model ({_first_line(error)}). "
                "It was written by another architecture: use a new --workdir.") from error
        except (tf.errors.OpError, IndexError) as error:  # IndexError: a data file cut short
            logger.warning("Checkpoint %s is unreadable (%s); trying the previous one.",
                           path, _first_line(error))
            errors.append(f"  {Path(path).name}: {_first_line(error)}")
    if errors:
        raise CheckpointUnreadableError(
            f"No checkpoint in {manager.directory} could be read:\n" + "\n".join(errors) + "\n"
            "Their files are damaged: put them back from a copy, or move the folder away to start "
            "the run over, or use a new --workdir.")
    return None


def restore_run(config: ExperimentConfig, checkpoint_dir: Path, checkpoint_prefix: str | None = None):
    """Builds a training run's model and restores one of its checkpoints, for use after training.

    The model (GAN3D or VAEGAN3D, as the config says) is built outside any
    strategy and in the run's precision, so it computes as the run did; the
    global dtype policy is put back afterwards (the layers keep theirs).

    Args:
        config: The run's config (its config.json); the settings of the run's latest
            start are used when the workdir records them (`latest_config`).
        checkpoint_dir: The run's checkpoints/ folder.
        checkpoint_prefix: A checkpoint of that run (.../ckpt-1200); None restores the newest.

    Returns:
        (model, path of the restored checkpoint).

    Raises:
        CheckpointMismatchError: no checkpoint, or one that does not fit the config's model.
        CheckpointUnreadableError (a RuntimeError): checkpoints exist but none can be read.
        ValueError: when called inside a distribution strategy's scope.
    """
    import keras

    from tf3dgan.models.builders import build_model

    if tf.distribute.has_strategy():
        raise ValueError("Restore a model for use after training outside any distribution strategy's scope.")
    # A resumed start may have changed how the model is built (ema_decay, precision).
    config = latest_config(Path(checkpoint_dir).parent, config)
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

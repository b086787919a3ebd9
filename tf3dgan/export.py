"""SavedModel export in TF Serving's layout, atomically.

`export_model` writes

    <model_base_path>/<version>/
        saved_model.pb                      the signatures of `tf3dgan.signatures`
                                            (with `reconstruct` and `reconstruct_bytes`
                                            for a 3D-VAE-GAN, which has an image encoder)
        variables/
        assets/model_card.json              what the model is (see `model_card`)
        assets.extra/tf_serving_warmup_requests

The version is first written to a hidden staging directory inside
`model_base_path` (TF Serving ignores names that are not integers) and renamed
into place only when complete, so a server polling the base path never loads
half a model, and an export that fails leaves no version directory behind. An
existing version is never overwritten. A process killed mid-export can leave a
`.export-<version>-*` staging directory, which servers ignore and
`remove_stale_staging` deletes (a training run does, for its own export/, as it
starts).
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from tf3dgan import priors, signatures
from tf3dgan.config import ExperimentConfig
from tf3dgan.recognition_features import num_recognition_features
from tf3dgan.sampling import standalone_copy

MODEL_CARD_FILE = "model_card.json"
WARMUP_FILE = "tf_serving_warmup_requests"
REQUIRED_CARD_FIELDS = ("preset", "steps_trained", "data")
MAX_VERSION = 2**63 - 1  # TF Serving versions are int64
STAGING_PREFIX = ".export-"  # + "<version>-<random>": not an integer, so servers skip it
PRIOR_DESCRIPTIONS = {"uniform": "Uniform(0, 1)", "normal": f"Normal(0, {priors.NORMAL_STDDEV})",
                      "standard_normal": "Normal(0, 1)"}


def model_card(config: ExperimentConfig, *, steps_trained: int, data_description: str) -> dict:
    """The caller's part of a model card, from a run's config.

    `export_model` adds what it reads from the networks (resolution, latent_dim,
    prior, signatures, versions).

    Args:
        config: The run's experiment config.
        steps_trained: Training steps the exported weights have seen.
        data_description: One line on the training data (e.g. the dataset's
            `description`).

    Returns:
        A JSON-serializable dict with preset, steps_trained, data and config.
    """
    return {
        "preset": config.preset,
        "steps_trained": int(steps_trained),
        "data": {"description": data_description, **dataclasses.asdict(config.data)},
        "config": config.to_dict(),
    }


def check_destination(model_base_path: str | os.PathLike, version: int) -> Path:
    """Checks that `model_base_path/version` can be written; returns that path.

    Nothing is created. Call it before expensive work (restoring a checkpoint)
    to fail early; `export_model` calls it again.

    Args:
        model_base_path: The model's base path (a directory, created if missing).
        version: A positive integer.

    Returns:
        The version directory to be written.

    Raises:
        ValueError: if `version` is not a positive int64, or the base path (or
            an ancestor of it) is a file.
        FileExistsError: if that version already exists (also spelled with
            leading zeros, which TF Serving reads as the same version).
        PermissionError: if the base path cannot be written.
    """
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version <= MAX_VERSION:
        raise ValueError(
            f"version must be a positive integer (TF Serving loads <model_base_path>/<integer>/), "
            f"received {version!r}; pass e.g. --version 1.")
    base = Path(model_base_path)
    existing = base
    while not existing.exists():  # the nearest ancestor that exists decides
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(
            f"model_base_path {base} cannot be created: {existing} is a file, not a directory. "
            "Pass a directory path (it is created if missing).")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"Cannot write to {existing}; pass a model_base_path you can write to.")
    target = base / str(version)
    if base.is_dir():
        for child in base.iterdir():
            if child.name.isdigit() and int(child.name) == version:
                raise FileExistsError(
                    f"Version {version} already exists at {child}; exported versions are never "
                    "overwritten. Pass another version, or delete that directory first.")
    return target


def export_model(gan, model_base_path: str | os.PathLike, version: int, *,
                 model_card: dict) -> Path:
    """Exports a 3D-GAN with all its serving signatures to `model_base_path/version`.

    The networks are copied out of any distribution strategy first, keeping
    their dtype policy; every output is float32 even under mixed_bfloat16.
    A model with an image encoder (a `VAEGAN3D`) also gets the `reconstruct`
    and `reconstruct_bytes` signatures, and its card records `image_size`.

    Args:
        gan: A `GAN3D` or `VAEGAN3D` (anything with `.generator`,
            `.discriminator` and `.prior`, and optionally `.encoder`).
        model_base_path: The TF Serving model base path.
        version: A positive integer; the version directory's name.
        model_card: The caller's part of the card: at least `preset`,
            `steps_trained` and `data` (see `model_card()`); any other
            JSON-serializable keys are kept.

    Returns:
        The version directory.

    Raises:
        ValueError: bad version or path, networks that do not match, a model
            card without the required fields or one that contradicts the
            networks, or a call inside a distribution strategy's scope.
        FileExistsError: if the version exists.
        PermissionError: if the base path cannot be written.
    """
    if tf.distribute.has_strategy():
        raise ValueError(
            f"export_model was called inside the scope of {type(tf.distribute.get_strategy()).__name__}; "
            "call it outside `with strategy.scope():` (it copies the networks out of the strategy itself).")
    check_destination(model_base_path, version)
    missing = [name for name in REQUIRED_CARD_FIELDS if name not in model_card]
    if missing:
        raise ValueError(
            f"model_card lacks {missing}; it needs {list(REQUIRED_CARD_FIELDS)}. "
            "Build it with tf3dgan.export.model_card(config, steps_trained=..., data_description=...).")
    generator = standalone_copy(gan.sampling_generator)
    ema_decay = getattr(gan, "ema_decay", 0.0)
    model_card = {**model_card, "generator_weights": (
        f"exponential moving average of the trained weights (decay {ema_decay})" if ema_decay else "trained")}
    discriminator = standalone_copy(gan.discriminator)
    functions = signatures.signature_functions(generator, discriminator, gan.prior)
    encoder = getattr(gan, "encoder", None)
    image_size = None
    if encoder is not None:
        encoder = standalone_copy(encoder)
        image_size = int(encoder.image_size)
        functions.update(signatures.reconstruction_functions(generator, encoder))
    names = signatures.signature_names(encoder is not None)
    card = _complete_card(model_card, generator, gan.prior, version, functions, image_size)

    def write(directory: Path) -> None:
        archive = keras.export.ExportArchive()
        for network in (generator, discriminator, encoder):
            if network is not None:
                archive.track(network)
        for name in names:
            archive.add_endpoint(name, functions[name])
        archive.write_out(str(directory), verbose=False)
        _write_model_card(directory / "assets" / MODEL_CARD_FILE, card)
        _write_warmup_requests(directory / "assets.extra" / WARMUP_FILE, {
            name: signatures.example_inputs(name, generator.latent_dim, generator.resolution, gan.prior,
                                            image_size)
            for name in names})

    return _write_atomically(model_base_path, version, write)


def export_generator(generator, model_base_path: str | os.PathLike, version: int) -> Path:
    """Writes the generator alone, with the `serving_default` signature only, atomically.

    Prefer `export_model`, which adds the other signatures, the model card and
    the warm-up requests; this remains for callers that hold only a generator.

    Args:
        generator: A built `Generator`.
        model_base_path: The TF Serving model base path.
        version: A positive integer.

    Returns:
        The version directory.

    Raises:
        ValueError: if `version` is not a positive integer or the path is a file.
        FileExistsError: if that version already exists.
    """
    check_destination(model_base_path, version)

    @tf.function(input_signature=[tf.TensorSpec([None, generator.latent_dim], tf.float32, name="z")])
    def generate(z):
        return {"voxels": tf.cast(generator(z, training=False), tf.float32)}

    def write(directory: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(generator)
        archive.add_endpoint(signatures.SERVING_DEFAULT, generate)
        archive.write_out(str(directory), verbose=False)

    return _write_atomically(model_base_path, version, write)


def read_model_card(version_directory: str | os.PathLike) -> dict:
    """The model card of an exported version.

    Args:
        version_directory: `<model_base_path>/<version>`.

    Returns:
        The card's fields, as `export_model` wrote them.

    Raises:
        FileNotFoundError: if the directory has no model card (not written by
            `export_model`).
    """
    return json.loads((Path(version_directory) / "assets" / MODEL_CARD_FILE).read_text())


def _complete_card(card: dict, generator, prior: str, version: int, functions: dict,
                   image_size: int | None = None) -> dict:
    computed = {
        "resolution": generator.resolution,
        "latent_dim": generator.latent_dim,
        "base_filters": generator.base_filters,
        "prior": prior,
        "prior_distribution": PRIOR_DESCRIPTIONS.get(prior, prior),
        "precision": generator.dtype_policy.name,
        "num_recognition_features": num_recognition_features(generator.resolution, generator.base_filters),
        "occupancy_bitorder": signatures.OCCUPANCY_BITORDER,
        "version": version,
        "signatures": signatures.describe(functions),
        "tf3dgan_version": _package_version("tf3dgan"),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if image_size is not None:  # a 3D-VAE-GAN: what its image signatures expect
        computed["image_size"] = image_size
        computed["image_background"] = [round(value * 255) for value in signatures.IMAGE_BACKGROUND]
    conflicts = [name for name in computed if name in card and card[name] != computed[name]]
    if conflicts:
        raise ValueError(
            "model_card contradicts what export_model reads from the networks: " + ", ".join(
                f"{name}={card[name]!r} (the export has {computed[name]!r})" for name in conflicts)
            + ". Leave these fields out; export_model fills them in.")
    return {**card, **computed}


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _write_model_card(path: Path, card: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")


def _write_warmup_requests(path: Path, requests: dict) -> None:
    """Writes one PredictRequest per signature as TF Serving's warm-up TFRecord of PredictionLogs."""
    # Imported here: only export needs the serving protos.
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name, inputs in requests.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = name
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _fsync_directory(directory) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(directory: Path) -> None:
    # The rename must not become durable before the files it publishes.
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_directory(root)


def remove_stale_staging(model_base_path: str | os.PathLike) -> list[Path]:
    """Removes the staging directories that interrupted exports left; returns what was removed.

    Args:
        model_base_path: The model base path; call it only while nothing exports into it
            (an export in progress stages there too).

    Returns:
        The removed directories, sorted.
    """
    base = Path(model_base_path)
    stale = sorted(path for path in base.glob(f"{STAGING_PREFIX}*")
                   if path.is_dir() and not path.is_symlink()) if base.is_dir() else []
    for path in stale:
        shutil.rmtree(path)
    return stale


def _write_atomically(model_base_path, version: int, write: Callable[[Path], None]) -> Path:
    """Runs `write(directory)` in a hidden staging directory, then renames it to the version."""
    target = check_destination(model_base_path, version)
    base = target.parent
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=base))
    try:
        written = staging / "model"
        write(written)
        _fsync_tree(written)
        # Checked again: another exporter may have written this version meanwhile.
        check_destination(model_base_path, version)
        try:
            os.rename(written, target)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(
                    f"Version {version} appeared at {target} while exporting; it was not "
                    "overwritten. Pass another version.") from error
            raise
        _fsync_directory(base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


"""Where recognition features come from: a trained model in any of its forms, or a baseline.

`open_model(path)` reads the discriminator of

    a training workdir          (holds config.json and checkpoints/): the newest checkpoint;
    a checkpoints/ directory    (holds a `checkpoint` index file): its newest checkpoint,
                                with the config.json of the workdir above it;
    a checkpoint prefix         (e.g. runs/x/checkpoints/ckpt-200, beside ckpt-200.index);
    an exported SavedModel      (a version directory, <base>/<version>/saved_model.pb),
                                through its `discriminator_features` signature;
    a model base path           (a directory of integer version directories): its newest
                                version, as TF Serving would serve it;

and `served_model(server, model_name)` asks a TF Serving (or `python -m serving.server`)
model's `discriminator_features` signature over gRPC. The baselines are
`untrained_discriminator(resolution, base_filters, seed)` (a randomly initialized
discriminator of the same architecture) and `pooled_voxels(edge)` (the occupancy grid
itself, max-pooled to edge^3).

Every source turns float32 grids [batch, R, R, R] into float32 features [batch, F] with
`extract_batch`; `extract_features` runs one over a whole dataset in batches, bringing the
data's grids to the source's resolution first (nearest-neighbour upsampling by an integer
factor, as training does), with a progress line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tf3dgan.progress import Progress
from tf3dgan.recognition_features import num_recognition_features

FEATURES_SIGNATURE = "discriminator_features"
CHECKPOINT_INDEX = "checkpoint"
PATH_KINDS = (
    "a training workdir (with config.json and checkpoints/), a checkpoints/ directory, "
    "a checkpoint prefix (e.g. runs/x/checkpoints/ckpt-200, beside ckpt-200.index), "
    "an exported SavedModel version directory (with saved_model.pb), or a model base path "
    "(a directory of integer version directories)")
# gRPC's default 4 MiB limit is four 64^3 float grids: lift it, as TF Serving clients do.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class ModelPathError(ValueError):
    """--model names nothing this benchmark can read features from."""


def base_filters_from_feature_count(resolution: int, count: int) -> int:
    """The discriminator width that gives `count` features at `resolution`.

    Raises:
        ValueError: if no width gives that count.
    """
    per_filter = num_recognition_features(resolution, 1)
    if count <= 0 or count % per_filter:
        raise ValueError(
            f"{count} features at {resolution}^3 match no tf3dgan discriminator (the count is "
            f"a multiple of {per_filter}: base_filters * {per_filter}).")
    return count // per_filter


# ----------------------------------------------------------------------------
# Sources.

class DiscriminatorSource:
    """Features of an in-process `Discriminator` (trained, restored or untrained).

    Args:
        discriminator: A built `tf3dgan.models.Discriminator`.
        name: Short name for tables ("model", "untrained D").
        identity: What the weights are, for the report.
    """

    def __init__(self, discriminator, name: str, identity: dict):
        import tensorflow as tf

        from tf3dgan.recognition_features import recognition_features

        self.discriminator = discriminator
        self.name = name
        self.identity = identity
        self.resolution = int(discriminator.resolution)
        self.base_filters = int(discriminator.base_filters)
        self.num_features = num_recognition_features(self.resolution, self.base_filters)
        grid = [None] + [self.resolution] * 3
        self._features = tf.function(
            lambda voxels: recognition_features(discriminator, voxels),
            input_signature=[tf.TensorSpec(grid, tf.float32)])

    def extract_batch(self, voxels: np.ndarray) -> np.ndarray:
        return self._features(np.asarray(voxels, np.float32)).numpy()


class SavedModelSource:
    """Features from an exported SavedModel's `discriminator_features` signature.

    Args:
        path: The version directory (holding saved_model.pb).
        name: Short name for tables.

    Raises:
        ModelPathError: if the SavedModel has no `discriminator_features` signature.
    """

    def __init__(self, path: str | os.PathLike, name: str = "model"):
        import tensorflow as tf

        from tf3dgan import export

        self.path = Path(path)
        self.name = name
        self._loaded = tf.saved_model.load(str(self.path))
        if FEATURES_SIGNATURE not in self._loaded.signatures:
            raise ModelPathError(
                f"The SavedModel {self.path} has no {FEATURES_SIGNATURE!r} signature (it has "
                f"{sorted(self._loaded.signatures)}); export it with `python -m pipelines.export`, "
                "which writes every tf3dgan signature.")
        self._function = self._loaded.signatures[FEATURES_SIGNATURE]
        self.resolution = int(self._function.structured_input_signature[1]["voxels"].shape[1])
        try:
            card = export.read_model_card(self.path)
        except (FileNotFoundError, ValueError):
            card = None
        self.num_features = int(self.extract_batch(np.zeros((1,) + (self.resolution,) * 3, np.float32)).shape[1])
        self.base_filters = (int(card["base_filters"]) if card and "base_filters" in card
                             else base_filters_from_feature_count(self.resolution, self.num_features))
        self.identity = {"kind": "saved_model", "path": str(self.path.resolve()),
                         "version": self.path.name, "model_card": card}

    def extract_batch(self, voxels: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        outputs = self._function(voxels=tf.constant(np.asarray(voxels, np.float32)))
        return outputs["features"].numpy()


class ServedSource:
    """Features from a served model's `discriminator_features` signature, over gRPC.

    Uses only the stock `tensorflow_serving.apis` stubs, so it works against
    `tensorflow_model_server` and `python -m serving.server` alike.

    Args:
        server: "host:port" of the gRPC API.
        model_name: The model's name on the server.
        version: A version to pin, or None for the newest.
        timeout: Seconds per call.
        name: Short name for tables.

    Raises:
        ModelPathError: if the server cannot be reached, does not serve the model, or
            the model has no `discriminator_features` signature.
    """

    def __init__(self, server: str, model_name: str, version: int | None = None,
                 timeout: float = 120.0, name: str = "model"):
        import grpc
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            prediction_service_pb2_grpc,
        )

        self.server, self.model_name, self.version, self.timeout = server, model_name, version, timeout
        self.name = name
        self._channel = grpc.insecure_channel(server, options=CHANNEL_OPTIONS)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        try:
            response = self._stub.GetModelMetadata(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ModelPathError(
                f"Could not read model {model_name!r} from the server at {server}: "
                f"{error.code().name}: {error.details()}. Check --server host:port (the gRPC "
                "port, 8500 by default) and --model_name.") from error
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        if FEATURES_SIGNATURE not in signature_map.signature_def:
            raise ModelPathError(
                f"The served model {model_name!r} has no {FEATURES_SIGNATURE!r} signature (it has "
                f"{sorted(signature_map.signature_def)}); serve a tf3dgan export.")
        voxels_info = signature_map.signature_def[FEATURES_SIGNATURE].inputs["voxels"]
        self.resolution = int(voxels_info.tensor_shape.dim[1].size)
        self.served_version = int(response.model_spec.version.value)
        self.num_features = int(self.extract_batch(np.zeros((1,) + (self.resolution,) * 3, np.float32)).shape[1])
        self.base_filters = base_filters_from_feature_count(self.resolution, self.num_features)
        self.identity = {"kind": "served", "server": server, "model_name": model_name,
                         "version": self.served_version}

    def _fill_spec(self, spec) -> None:
        spec.name = self.model_name
        spec.signature_name = FEATURES_SIGNATURE
        if self.version is not None:
            spec.version.value = self.version

    def extract_batch(self, voxels: np.ndarray) -> np.ndarray:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest(output_filter=["features"])
        self._fill_spec(request.model_spec)
        request.inputs["voxels"].CopyFrom(tf.make_tensor_proto(np.asarray(voxels, np.float32)))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise RuntimeError(f"Predict on {self.server} ({self.model_name}) failed: "
                               f"{error.code().name}: {error.details()}") from error
        return tf.make_ndarray(response.outputs["features"])

    def close(self) -> None:
        self._channel.close()


class VoxelSource:
    """The raw-voxel baseline: each grid max-pooled to edge^3 and flattened.

    Max-pooling keeps a cell occupied if any voxel in it is (so thin parts survive);
    the README's reference figures use the same pooling (80.8% at 8^3, 82.8% at 16^3
    with LinearSVC on ModelNet10).

    Args:
        edge: The pooled grid's edge; must divide the data's edge.
    """

    resolution = None  # reads grids at the data's own resolution

    def __init__(self, edge: int = 16):
        if edge < 1:
            raise ValueError(f"The raw-voxel edge must be positive, received {edge!r}.")
        self.edge = int(edge)
        self.name = f"raw voxels {self.edge}^3"
        self.num_features = self.edge ** 3
        self.identity = {"kind": "raw_voxels", "pooling": f"max-pool to {self.edge}^3"}

    def extract_batch(self, voxels: np.ndarray) -> np.ndarray:
        voxels = np.asarray(voxels)
        size = voxels.shape[1]
        if size % self.edge:
            raise ValueError(
                f"The raw-voxel baseline max-pools {size}^3 grids to {self.edge}^3, but {self.edge} "
                f"does not divide {size}; pass --voxel_edge with a divisor of {size} (e.g. "
                f"{min(size, 16)}).")
        window = size // self.edge
        pooled = voxels.reshape(len(voxels), self.edge, window, self.edge, window, self.edge, window)
        return pooled.max(axis=(2, 4, 6)).reshape(len(voxels), -1).astype(np.float32)


# ----------------------------------------------------------------------------
# Opening a model.

def read_config(path: Path):
    """A workdir's config.json as an ExperimentConfig (ModelPathError if it is not one)."""
    from tf3dgan.config import ExperimentConfig

    try:
        return ExperimentConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise ModelPathError(f"{path} is not a tf3dgan config ({error}).") from error


def _restore_discriminator(config, prefix: str | None, checkpoint_dir: Path, kind: str,
                           path: Path) -> DiscriminatorSource:
    """Builds the run's GAN, restores `prefix` (or the newest checkpoint), keeps D."""
    from tf3dgan import checkpointing

    try:
        gan, restored = checkpointing.restore_run(config, checkpoint_dir, prefix)
    except (checkpointing.CheckpointMismatchError, RuntimeError) as error:
        raise ModelPathError(str(error)) from error
    step = int(gan.step_counter.numpy())
    identity = {"kind": kind, "path": str(path.resolve()), "checkpoint": str(restored),
                "step": step, "preset": config.preset, "config": config.to_dict()}
    return DiscriminatorSource(gan.discriminator, "model", identity)


def _newest_version(base: Path) -> Path | None:
    versions = [child for child in base.iterdir()
                if child.name.isdigit() and (child / "saved_model.pb").is_file()]
    return max(versions, key=lambda child: int(child.name)) if versions else None


def open_model(path: str | os.PathLike):
    """Opens `path` as a feature source, whichever of the forms (module docstring) it is.

    Args:
        path: A workdir, checkpoints/ directory, checkpoint prefix, SavedModel version
            directory or model base path.

    Returns:
        A source with `name`, `resolution`, `base_filters`, `num_features`, `identity`
        and `extract_batch`.

    Raises:
        ModelPathError: if `path` is none of these, or holds no checkpoint or a
            checkpoint that does not fit its config.
    """
    from tf3dgan import checkpointing

    path = Path(path)
    config_name = checkpointing.CONFIG_FILE
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SavedModelSource(path)
        if (path / config_name).is_file():
            config = read_config(path / config_name)
            checkpoint_dir = path / "checkpoints"
            if not (checkpoint_dir / CHECKPOINT_INDEX).is_file():
                raise ModelPathError(
                    f"The workdir {path} has no checkpoint in {checkpoint_dir}; train first "
                    f"(python -m pipelines.train --workdir {path}), or pass its export/<step>/.")
            return _restore_discriminator(config, None, checkpoint_dir, "workdir", path)
        if (path / CHECKPOINT_INDEX).is_file():
            config_path = path.parent / config_name
            if not config_path.is_file():
                raise ModelPathError(
                    f"{path} holds checkpoints but {config_path} is missing, so the architecture "
                    "is unknown; pass the training workdir that holds both.")
            return _restore_discriminator(read_config(config_path), None, path, "workdir", path.parent)
        newest = _newest_version(path)
        if newest is not None:
            return SavedModelSource(newest)
        raise ModelPathError(
            f"--model {path} is a directory, but not one this benchmark can read: it holds no "
            f"saved_model.pb, {config_name}, checkpoint index or version directory. Pass "
            f"{PATH_KINDS}.")
    if Path(str(path) + ".index").is_file():
        for candidate in (path.parent.parent / config_name, path.parent / config_name):
            if candidate.is_file():
                return _restore_discriminator(read_config(candidate), str(path), path.parent,
                                              "checkpoint", path)
        raise ModelPathError(
            f"{path} is a checkpoint, but no {config_name} was found in {path.parent.parent} or "
            f"{path.parent}, so the architecture is unknown; pass a checkpoint inside its "
            "training workdir.")
    if not path.exists():
        raise ModelPathError(f"--model {path} does not exist. Pass {PATH_KINDS}.")
    raise ModelPathError(f"--model {path} is a file, not a model. Pass {PATH_KINDS}.")


def served_model(server: str, model_name: str, version: int | None = None) -> ServedSource:
    """A served model's features (see `ServedSource`)."""
    return ServedSource(server, model_name, version)


def untrained_discriminator(resolution: int, base_filters: int, seed: int) -> DiscriminatorSource:
    """A randomly initialized discriminator of the given architecture, in float32.

    Its weights are a function of `seed` alone: the global Keras/NumPy/Python seeds are
    set to `seed` right before it is built (`keras.utils.set_random_seed`). Its
    BatchNorm layers hold their initial statistics (mean 0, variance 1) and run in
    inference mode, as a trained model's do.

    It is the baseline for a model whose D is spectrally normalized or unnormalized
    (--discriminator_normalization) too: at these statistics BatchNorm is the identity
    (up to its epsilon), and spectral normalization only divides each layer by a
    positive number, which LeakyReLU, max-pooling and the classifier's standardization
    all pass through. Either way the features are those of random convolutions of the
    same widths.

    Args:
        resolution: Input grid edge (16, 32 or 64).
        base_filters: First-layer width.
        seed: The seed.

    Returns:
        A `DiscriminatorSource` named "untrained D".
    """
    import keras

    from tf3dgan.models.discriminator import Discriminator

    keras.utils.set_random_seed(seed)
    discriminator = Discriminator(resolution=resolution, base_filters=base_filters,
                                  dtype="float32", name="discriminator")
    discriminator.build()
    identity = {"kind": "untrained", "resolution": resolution, "base_filters": base_filters,
                "seed": seed, "initialization": "keras.utils.set_random_seed(seed), then the "
                "Discriminator's default initializers; BatchNorm at its initial statistics"}
    return DiscriminatorSource(discriminator, "untrained D", identity)


# ----------------------------------------------------------------------------
# Extraction.

def extract_features(source, voxels: np.ndarray, *, batch_size: int = 32,
                     label: str = "features") -> tuple[np.ndarray, float]:
    """Runs `source` over all `voxels` in batches, with a progress line.

    Args:
        source: A feature source (this module).
        voxels: [N, S, S, S] occupancies in {0, 1} at the data's resolution S.
        batch_size: Grids per call.
        label: The progress line's label.

    Returns:
        (float32 features [N, F], seconds taken).

    Raises:
        ValueError: if the data's grids cannot be brought to the source's resolution,
            or `batch_size` is not positive.
    """
    from tf3dgan.data.arrays import resize_grids

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, received {batch_size!r}.")
    size = int(voxels.shape[1])
    target = source.resolution
    if target is not None and (size > target or target % size):
        raise ValueError(
            f"The data's grids are {size}^3 but the model reads {target}^3 grids; only upsampling "
            f"by an integer factor is done (as in training). Evaluate on data at {target}^3 or at "
            "a divisor of it.")
    progress = Progress(label, len(voxels))
    batches = []
    for start in range(0, len(voxels), batch_size):
        batch = voxels[start:start + batch_size]
        if target is not None:
            batch = resize_grids(batch, target)
        batches.append(np.asarray(source.extract_batch(batch.astype(np.float32)), np.float32))
        progress.update(len(batch))
    seconds = progress.finish()
    return np.concatenate(batches, axis=0), seconds

"""A trained generator from wherever it lives: workdir, checkpoint, SavedModel or server.

`load_model_source(path)` accepts

    a training workdir          holds config.json and checkpoints/ (python -m pipelines.train);
                                the newest readable checkpoint is restored
    a checkpoints/ folder       WORKDIR/checkpoints: the same as WORKDIR
    a checkpoint prefix         e.g. WORKDIR/checkpoints/ckpt-400 (the files ckpt-400.index
                                and ckpt-400.data-*); config.json is read from the workdir
                                that holds its folder
    a SavedModel version dir    <model_base_path>/<version>/ written by tf3dgan.export (it
                                has the model card); a model base path picks its newest
                                version
    host:port                   a TF-Serving-compatible gRPC server (tensorflow_model_server
                                or ours) serving such a SavedModel as `model_name`

and returns a `ModelSource` that draws z from the prior the model was *trained* with (read
from config.json or the model card, never from a flag: sampling a Uniform(0, 1) generator
with N(0, 0.33), or the reverse, gives garbage) and maps z to voxels.

z for seed s is `tf3dgan.priors.sample_latent_per_seed(prior, [s], latent_dim)`, what the
exported `sample` signature draws: the same seed gives the same z, and so the same shape,
from a workdir, its SavedModel and a server serving it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "default"  # tensorflow_model_server's default --model_name
DEFAULT_BATCH_SIZE = 8
# A 64^3 float grid is 1 MiB: gRPC's default 4 MiB message limit would cap a batch at 3.
_GRPC_MESSAGE_LIMIT = 256 * 1024 * 1024
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*):(\d{1,5})$")
_INT64 = (-(2**63), 2**63 - 1)


class ModelSourceError(ValueError):
    """PATH names no model this module can load (or a model it cannot use)."""


def check_seeds(seeds) -> np.ndarray:
    """Validates seeds: a non-empty sequence of integers in the int64 range.

    Returns:
        int64 [N].

    Raises:
        ValueError: otherwise.
    """
    values = list(np.atleast_1d(np.asarray(seeds, dtype=object)).ravel())
    if not values:
        raise ValueError("seeds is empty; pass at least one integer seed.")
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                or not _INT64[0] <= int(value) <= _INT64[1]:
            raise ValueError(f"seeds must be int64 integers, received {value!r} in {seeds!r}.")
    return np.asarray([int(value) for value in values], dtype=np.int64)


class ModelSource:
    """A generator and its training prior. Subclasses implement `_generate` and `_latents`.

    Attributes:
        kind: "workdir", "checkpoint", "saved_model" or "server".
        prior: The training prior, "uniform" or "normal".
        latent_dim: Size of z.
        resolution: Grid edge R of the generated voxels.
        identity: JSON-serializable description of the model (kind, path, step or
            version, preset, ...), for the records the tools write.
        training_config: The run's `ExperimentConfig` when the model records it
            (workdir, checkpoint, SavedModel), else None (server).
    """

    kind = "model"

    def __init__(self, *, prior: str, latent_dim: int, resolution: int, identity: dict,
                 training_config=None, batch_size: int = DEFAULT_BATCH_SIZE):
        self.prior = prior
        self.latent_dim = int(latent_dim)
        self.resolution = int(resolution)
        self.identity = {"kind": self.kind, **identity, "prior": prior,
                         "latent_dim": self.latent_dim, "resolution": self.resolution}
        self.training_config = training_config
        self.batch_size = int(batch_size)

    def latents(self, seeds) -> np.ndarray:
        """z for each seed, from the training prior: float32 [N, latent_dim].

        Raises:
            ValueError: for seeds that are not int64 integers.
        """
        seeds = check_seeds(seeds)
        return np.concatenate([self._latents(chunk) for chunk in self._chunks(seeds)])

    def generate(self, z) -> np.ndarray:
        """G(z): float32 [N, R, R, R] occupancy probabilities (BatchNorm in inference mode).

        Raises:
            ValueError: if z is not [N, latent_dim].
        """
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.shape[0] == 0:
            raise ValueError(
                f"z must have shape [N, {self.latent_dim}] with N >= 1 (this model's latent_dim "
                f"is {self.latent_dim}), received shape {z.shape}.")
        return np.concatenate([self._generate(chunk) for chunk in self._chunks(z)])

    def sample(self, seeds) -> tuple[np.ndarray, np.ndarray]:
        """(z [N, latent_dim], G(z) [N, R, R, R]) for each seed."""
        z = self.latents(seeds)
        return z, self.generate(z)

    def differentiable_generator(self):
        """A function z (float32 tensor [N, latent_dim]) -> voxels tensor that TensorFlow
        can differentiate, for finding the z of a given shape.

        Raises:
            ModelSourceError: for a model behind a server (gradients do not cross gRPC).
        """
        raise ModelSourceError(
            f"A {self.kind} model cannot be differentiated here; finding z for a shape needs "
            "the model in this process: pass its workdir or SavedModel directory as --model.")

    def close(self) -> None:
        """Releases connections (servers); a no-op otherwise."""

    def _chunks(self, array):
        return [array[start:start + self.batch_size] for start in range(0, len(array), self.batch_size)]

    def _latents(self, seeds: np.ndarray) -> np.ndarray:
        from tf3dgan import priors

        return priors.sample_latent_per_seed(self.prior, seeds, self.latent_dim).numpy()

    def _generate(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class GeneratorSource(ModelSource):
    """A Keras `Generator` in this process (restored from a workdir or a checkpoint).

    Args:
        generator: A built `tf3dgan.models.generator.Generator` outside any strategy.
        prior: The prior it was trained with.
        identity: Description for records.
        training_config: The run's `ExperimentConfig`, if known.
        kind: "workdir" or "checkpoint" (or anything descriptive).
    """

    def __init__(self, generator, prior: str, identity: dict | None = None, training_config=None,
                 kind: str = "generator"):
        from tf3dgan import priors

        priors.sample_latent(prior, [1, 1], [0, 0])  # an unknown prior fails here
        self.kind = kind
        self.generator = generator
        super().__init__(prior=prior, latent_dim=generator.latent_dim,
                         resolution=generator.resolution, identity=identity or {},
                         training_config=training_config)

    def _generate(self, z):
        return np.asarray(self.differentiable_generator()(z), dtype=np.float32)

    def differentiable_generator(self):
        import tensorflow as tf

        generator = self.generator
        return lambda z: tf.cast(generator(z, training=False), tf.float32)


class SavedModelSource(ModelSource):
    """A SavedModel version directory written by `tf3dgan.export.export_model`."""

    kind = "saved_model"

    def __init__(self, directory: str | os.PathLike):
        import tensorflow as tf

        from tf3dgan import export, signatures
        from tf3dgan.config import ExperimentConfig

        directory = Path(directory)
        try:
            card = export.read_model_card(directory)
        except FileNotFoundError as error:
            raise ModelSourceError(
                f"The SavedModel {directory} has no assets/{export.MODEL_CARD_FILE}, so its "
                "training prior is unknown; export it with python -m pipelines.export (or "
                "tf3dgan.export.export_model), which records it.") from error
        missing = [key for key in ("prior", "latent_dim", "resolution") if key not in card]
        if missing:
            raise ModelSourceError(f"The model card of {directory} lacks {missing}; re-export the model.")
        self.loaded = tf.saved_model.load(str(directory))
        absent = [name for name in (signatures.SERVING_DEFAULT, signatures.SAMPLE)
                  if name not in self.loaded.signatures]
        if absent:
            raise ModelSourceError(
                f"The SavedModel {directory} lacks the signatures {absent}; re-export it with "
                "python -m pipelines.export.")
        self._serving_default = self.loaded.signatures[signatures.SERVING_DEFAULT]
        self._sample = self.loaded.signatures[signatures.SAMPLE]
        try:
            config = ExperimentConfig.from_dict(card["config"]) if "config" in card else None
        except (TypeError, ValueError):
            config = None
        identity = {"path": str(directory.resolve()), "version": card.get("version"),
                    "steps_trained": card.get("steps_trained"), "preset": card.get("preset")}
        super().__init__(prior=card["prior"], latent_dim=card["latent_dim"],
                         resolution=card["resolution"], identity=identity, training_config=config)

    def _latents(self, seeds):
        import tensorflow as tf

        # The model's own graph draws z: the prior recorded in it, whatever this code says.
        return self._sample(seed=tf.constant(seeds, tf.int64))["z"].numpy()

    def _generate(self, z):
        return np.asarray(self.differentiable_generator()(z), dtype=np.float32)

    def differentiable_generator(self):
        import tensorflow as tf

        function = self._serving_default
        return lambda z: function(z=tf.convert_to_tensor(z, tf.float32))["voxels"]


class ServerSource(ModelSource):
    """A model served over TF Serving's gRPC PredictionService (`host:port`).

    The latent size and resolution come from one `sample` request; the prior is
    identified by comparing the z the server draws for seeds 0 and 1 with this
    process's draws from each prior (the stateless generator gives the same numbers on
    the same TensorFlow version); "unknown" if neither matches. Sampling does not need
    it: the server's `sample` signature draws z itself.

    Args:
        target: "host:port".
        model_name: The model's name on the server.
        timeout: Seconds per request.
    """

    kind = "server"

    def __init__(self, target: str, model_name: str = DEFAULT_MODEL_NAME, timeout: float = 60.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        from tf3dgan import signatures

        self.target = target
        self.model_name = model_name
        self.timeout = float(timeout)
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", _GRPC_MESSAGE_LIMIT),
            ("grpc.max_send_message_length", _GRPC_MESSAGE_LIMIT)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        probe_seeds = np.array([0, 1], np.int64)
        outputs = self._predict(signatures.SAMPLE, {"seed": probe_seeds})
        z, voxels = outputs["z"], outputs["voxels"]
        latent_dim, resolution = z.shape[1], voxels.shape[1]
        prior = _identify_prior(z, probe_seeds, latent_dim)
        if prior == "unknown":
            logger.warning("Could not identify the prior of %s at %s: its z for seeds 0 and 1 match "
                           "no prior drawn here (another TensorFlow version?). Samples still come "
                           "from the server's own prior.", model_name, target)
        super().__init__(prior=prior, latent_dim=latent_dim, resolution=resolution,
                         identity={"target": target, "model_name": model_name})

    def _predict(self, signature_name: str, inputs: dict) -> dict:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature_name
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code = error.code().name if error.code() is not None else "UNKNOWN"
            hint = {"UNAVAILABLE": "is the server running and listening on that port?",
                    "NOT_FOUND": "check --model_name (the server's --model_name)",
                    "DEADLINE_EXCEEDED": "the server did not answer in time"}.get(code, "")
            raise ModelSourceError(
                f"Predict({signature_name}) on model {self.model_name!r} at {self.target} failed: "
                f"{code}: {error.details()}{'; ' + hint if hint else ''}") from error
        # tf.make_ndarray reads typed fields (float_val ...) as TF Serving fills them, and
        # tensor_content.
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

    def _latents(self, seeds):
        from tf3dgan import signatures

        return self._predict(signatures.SAMPLE, {"seed": np.asarray(seeds, np.int64)})["z"].astype(np.float32)

    def _generate(self, z):
        from tf3dgan import signatures

        return self._predict(signatures.SERVING_DEFAULT, {"z": z})["voxels"].astype(np.float32)

    def close(self) -> None:
        self._channel.close()


def _identify_prior(z: np.ndarray, seeds: np.ndarray, latent_dim: int) -> str:
    from tf3dgan import priors
    from tf3dgan.config import PRIORS

    for prior in PRIORS:
        local = priors.sample_latent_per_seed(prior, seeds, latent_dim).numpy()
        if local.shape == z.shape and np.allclose(local, z, rtol=0, atol=1e-6):
            return prior
    return "unknown"


def _read_config(path: Path):
    from tf3dgan.config import ExperimentConfig

    try:
        return ExperimentConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise ModelSourceError(f"{path} is not a tf3dgan config ({error}).") from error


def _restore_generator(config, workdir: Path, checkpoint_prefix: str | None):
    """Restores a run's GAN outside any strategy; returns (standalone generator, checkpoint, step)."""
    from tf3dgan import checkpointing
    from tf3dgan.sampling import standalone_copy

    try:
        gan, restored = checkpointing.restore_run(config, workdir / "checkpoints", checkpoint_prefix)
    except (checkpointing.CheckpointMismatchError, RuntimeError) as error:
        raise ModelSourceError(str(error)) from error
    # The copy keeps the generator's dtype policy: it computes as the run did.
    return standalone_copy(gan.sampling_generator), restored, int(gan.step_counter.numpy())


def _from_training_run(workdir: Path, checkpoint_prefix: str | None) -> GeneratorSource:
    import tensorflow as tf

    from tf3dgan import checkpointing

    config_path = workdir / checkpointing.CONFIG_FILE
    if not config_path.is_file():
        raise ModelSourceError(
            f"The checkpoint {checkpoint_prefix} has no {checkpointing.CONFIG_FILE} in {workdir}, "
            "so its architecture and prior are unknown; pass the checkpoint inside its training "
            "workdir (WORKDIR/checkpoints/ckpt-N).")
    config = _read_config(config_path)
    if checkpoint_prefix is None and tf.train.latest_checkpoint(str(workdir / "checkpoints")) is None:
        raise ModelSourceError(
            f"{workdir} has no checkpoint in {workdir / 'checkpoints'}; train first "
            f"(python -m pipelines.train --workdir {workdir}).")
    generator, restored, step = _restore_generator(config, workdir, checkpoint_prefix)
    kind = "workdir" if checkpoint_prefix is None else "checkpoint"
    identity = {"path": str(workdir.resolve() if checkpoint_prefix is None else Path(restored).resolve()),
                "checkpoint": str(Path(restored).resolve()), "step": step, "preset": config.preset}
    return GeneratorSource(generator, config.model.prior, identity, config, kind=kind)


def _newest_version(base: Path) -> Path | None:
    versions = [child for child in base.iterdir() if child.is_dir() and child.name.isdigit()
                and (child / "saved_model.pb").is_file()] if base.is_dir() else []
    return max(versions, key=lambda child: int(child.name)) if versions else None


def load_model_source(path: str | os.PathLike, *, model_name: str = DEFAULT_MODEL_NAME,
                      timeout: float = 60.0) -> ModelSource:
    """Loads the model at `path` (see the module docstring for what it may be).

    Args:
        path: A training workdir (or its checkpoints/ folder), a checkpoint prefix, a
            SavedModel version directory (or model base path), or "host:port" of a gRPC
            model server.
        model_name: The served model's name (servers only).
        timeout: Seconds per server request (servers only).

    Returns:
        A `ModelSource`.

    Raises:
        ModelSourceError (a ValueError): if `path` is none of these, or names a model
            that cannot be used (no config or model card, a checkpoint of another
            architecture, a server that does not answer).
    """
    from tf3dgan import checkpointing

    text = os.fspath(path)
    candidate = Path(text)
    if candidate.is_dir():
        if (candidate / "saved_model.pb").is_file():
            return SavedModelSource(candidate)
        if (candidate / checkpointing.CONFIG_FILE).is_file():
            return _from_training_run(candidate, None)
        if candidate.name == "checkpoints" and (candidate.parent / checkpointing.CONFIG_FILE).is_file():
            return _from_training_run(candidate.parent, None)
        newest = _newest_version(candidate)
        if newest is not None:
            logger.info("%s is a model base path; using its newest version %s.", candidate, newest.name)
            return SavedModelSource(newest)
    elif Path(text + ".index").is_file():
        folder = candidate.parent
        workdir = folder.parent if folder.name == "checkpoints" else folder
        return _from_training_run(workdir, text)
    elif not candidate.exists() and _HOST_PORT.match(text):
        return ServerSource(text, model_name=model_name, timeout=timeout)
    missing = "; the path does not exist" if not candidate.exists() and not _HOST_PORT.match(text) else ""
    raise ModelSourceError(
        f"--model {text!r} is not a model: expected a training workdir (with "
        f"{checkpointing.CONFIG_FILE} and checkpoints/), a checkpoint prefix such as "
        "WORKDIR/checkpoints/ckpt-400 (with its .index file), a SavedModel version directory "
        "(with saved_model.pb) or a model base path holding one, or host:port of a model "
        f"server{missing}.")

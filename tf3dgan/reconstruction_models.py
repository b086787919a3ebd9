"""The models the reconstruction benchmark reads: a 3D-VAE-GAN in any of its forms.

`open_reconstructor(path)` accepts

    a training workdir          (config.json with model "vae_gan", and checkpoints/): the
                                newest readable checkpoint, restored in this process;
    a checkpoints/ folder       the same, with the config.json of the workdir above it;
    a checkpoint prefix         e.g. runs/x/checkpoints/ckpt-200 (beside ckpt-200.index);
    a SavedModel version dir    exported by `tf3dgan.export.export_model` from a VAE-GAN:
                                its `reconstruct` signature and model card (image_size);
    a model base path           its newest version, as TF Serving would serve it;

and returns a `Reconstructor`: uint8 or float images [N, S, S, 3] -> G(z_mean), float32
[N, R, R, R] occupancy probabilities, BatchNorm in inference mode. A 3D-GAN (no image
encoder) is refused with a message that says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

RECONSTRUCT_SIGNATURE = "reconstruct"
PATH_KINDS = ("a 3D-VAE-GAN training workdir (with config.json and checkpoints/), its checkpoints/ "
              "folder, a checkpoint prefix (e.g. runs/x/checkpoints/ckpt-200), a SavedModel version "
              "directory exported from one (with the 'reconstruct' signature), or a model base path "
              "holding such versions")


class ReconstructionModelError(ValueError):
    """--model names nothing that reconstructs shapes from images."""


class Reconstructor:
    """Images -> voxels. Subclasses set the attributes and implement `_reconstruct`.

    Attributes:
        kind: "vae_gan" (in this process), "workdir", "checkpoint" or "saved_model".
        image_size: The encoder's input size S (images are [N, S, S, 3] in [0, 1]).
        resolution: Grid edge R of the reconstructions.
        latent_dim: Size of z.
        identity: JSON-serializable description of the model, for the report.
    """

    kind = "model"
    image_size: int
    resolution: int
    latent_dim: int
    identity: dict

    def reconstruct(self, images, batch_size: int = 32) -> np.ndarray:
        """G(z_mean) of each image: float32 [N, R, R, R] occupancy probabilities.

        Args:
            images: uint8 [N, S, S, 3] (scaled by 1/255) or float32 in [0, 1].
            batch_size: Images per call.

        Raises:
            ValueError: for images that are not [N, S, S, 3].
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"images must be [N, {self.image_size}, {self.image_size}, 3] (the encoder's "
                             f"image size), received shape {images.shape}.")
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        images = images.astype(np.float32, copy=False)
        return np.concatenate([self._reconstruct(images[start:start + batch_size])
                               for start in range(0, len(images), batch_size)])

    def _reconstruct(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class KerasReconstructor(Reconstructor):
    """A `VAEGAN3D` in this process (BatchNorm in inference mode).

    Args:
        model: A `VAEGAN3D` (anything with `.encoder`, `.generator` and `reconstruct`).
        identity: Description for the report.
        kind: What it was loaded from.
    """

    def __init__(self, model, identity: dict | None = None, kind: str = "vae_gan"):
        import tensorflow as tf

        self.kind = kind
        self.model = model
        self.image_size = int(model.encoder.image_size)
        self.resolution = int(model.generator.resolution)
        self.latent_dim = int(model.generator.latent_dim)
        self.identity = {"kind": kind, **(identity or {}), "image_size": self.image_size,
                         "resolution": self.resolution, "latent_dim": self.latent_dim}
        self._function = tf.function(lambda images: tf.cast(model.reconstruct(images, training=False),
                                                            tf.float32), reduce_retracing=True)

    def _reconstruct(self, images):
        return np.asarray(self._function(images), np.float32)


class SavedModelReconstructor(Reconstructor):
    """The `reconstruct` signature of a SavedModel written by `tf3dgan.export.export_model`."""

    kind = "saved_model"

    def __init__(self, directory: str | os.PathLike):
        import tensorflow as tf

        from tf3dgan import export

        directory = Path(directory)
        try:
            card = export.read_model_card(directory)
        except FileNotFoundError:
            card = {}
        self.loaded = tf.saved_model.load(str(directory))
        if RECONSTRUCT_SIGNATURE not in self.loaded.signatures:
            raise ReconstructionModelError(
                f"The SavedModel {directory} has no {RECONSTRUCT_SIGNATURE!r} signature (its signatures: "
                f"{sorted(self.loaded.signatures)}): it is not a 3D-VAE-GAN. Export a model trained "
                "with python -m pipelines.train --model vae_gan.")
        self._signature = self.loaded.signatures[RECONSTRUCT_SIGNATURE]
        outputs = self._signature.structured_outputs
        self.resolution = int(outputs["voxels"].shape[1])
        self.latent_dim = int(outputs["z_mean"].shape[1])
        if "image_size" not in card:
            raise ReconstructionModelError(
                f"The model card of {directory} does not record image_size; re-export the model with "
                "tf3dgan.export.export_model (python -m pipelines.export).")
        self.image_size = int(card["image_size"])
        self.identity = {"kind": self.kind, "path": str(directory.resolve()), "version": card.get("version"),
                         "steps_trained": card.get("steps_trained"), "preset": card.get("preset"),
                         "image_size": self.image_size, "resolution": self.resolution,
                         "latent_dim": self.latent_dim}

    def _reconstruct(self, images):
        import tensorflow as tf

        return self._signature(images=tf.constant(images))["voxels"].numpy()


def _restore_vae_gan(workdir: Path, checkpoint_prefix: str | None) -> KerasReconstructor:
    """A VAE-GAN training run's newest (or given) checkpoint, in this process."""
    from tf3dgan import checkpointing
    from tf3dgan.config import ExperimentConfig

    config_path = workdir / checkpointing.CONFIG_FILE
    if not config_path.is_file():
        raise ReconstructionModelError(
            f"{workdir} has no {checkpointing.CONFIG_FILE}, so its architecture is unknown; pass {PATH_KINDS}.")
    try:
        config = ExperimentConfig.from_dict(json.loads(config_path.read_text()))
    except (ValueError, TypeError) as error:
        raise ReconstructionModelError(f"{config_path} is not a tf3dgan config ({error}).") from error
    if config.model.model != "vae_gan":
        raise ReconstructionModelError(
            f"{workdir} is a 3D-GAN training run (no image encoder); reconstruction needs a 3D-VAE-GAN "
            "(python -m pipelines.train --model vae_gan ...).")
    try:
        model, restored = checkpointing.restore_run(config, workdir / "checkpoints", checkpoint_prefix)
    except (checkpointing.CheckpointMismatchError, RuntimeError) as error:
        raise ReconstructionModelError(str(error)) from error
    kind = "workdir" if checkpoint_prefix is None else "checkpoint"
    identity = {"path": str(workdir.resolve()), "checkpoint": str(Path(restored).resolve()),
                "step": int(model.step_counter.numpy()) if hasattr(model, "step_counter") else None,
                "preset": config.preset}
    return KerasReconstructor(model, identity, kind=kind)


def _newest_version(base: Path) -> Path | None:
    versions = [child for child in base.iterdir() if child.is_dir() and child.name.isdigit()
                and (child / "saved_model.pb").is_file()] if base.is_dir() else []
    return max(versions, key=lambda child: int(child.name)) if versions else None


def open_reconstructor(path: str | os.PathLike) -> Reconstructor:
    """Opens the 3D-VAE-GAN at `path` (see `PATH_KINDS`).

    Raises:
        ReconstructionModelError (a ValueError): if `path` is none of these, or a model
            without an image encoder.
    """
    text = os.fspath(path)
    candidate = Path(text)
    if candidate.is_dir():
        if (candidate / "saved_model.pb").is_file():
            return SavedModelReconstructor(candidate)
        if (candidate / "config.json").is_file():
            return _restore_vae_gan(candidate, None)
        if candidate.name == "checkpoints" and (candidate.parent / "config.json").is_file():
            return _restore_vae_gan(candidate.parent, None)
        newest = _newest_version(candidate)
        if newest is not None:
            return SavedModelReconstructor(newest)
    elif Path(text + ".index").is_file():
        folder = candidate.parent
        return _restore_vae_gan(folder.parent if folder.name == "checkpoints" else folder, text)
    missing = "; the path does not exist" if not candidate.exists() else ""
    raise ReconstructionModelError(f"--model {text!r} is not a model: expected {PATH_KINDS}{missing}.")

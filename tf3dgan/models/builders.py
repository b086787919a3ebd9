"""build_model(): the training model a config names, GAN3D or VAEGAN3D."""

from __future__ import annotations

from tf3dgan.config import MODELS
from tf3dgan.models.gan import build_gan
from tf3dgan.models.vae_gan import build_vae_gan

_BUILDERS = {"gan": build_gan, "vae_gan": build_vae_gan}


def build_model(model_config, train_config):
    """Builds and compiles the model `model_config.model` names (call inside a strategy scope).

    Anything that restores a training run's checkpoint (export, evaluation) should
    build its model here, so that a 3D-VAE-GAN comes back with its encoder.

    Args:
        model_config: A `ModelConfig`; its `model` is "gan" or "vae_gan".
        train_config: A `TrainConfig`.

    Returns:
        A compiled `GAN3D` ("gan") or `VAEGAN3D` ("vae_gan").

    Raises:
        ValueError: for another model name.
    """
    if model_config.model not in _BUILDERS:
        raise ValueError(f"model={model_config.model!r} is not supported. Expected one of {MODELS}.")
    return _BUILDERS[model_config.model](model_config, train_config)

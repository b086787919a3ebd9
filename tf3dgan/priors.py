"""The latent prior p(z), shared by training, sampling and export.

Drawing z the same way at training and sampling time matters: a generator
trained on Uniform(0, 1) and sampled with N(0, 1) produces garbage, one of the
causes of the "it only generates a cube" reports against other implementations.
"""

from __future__ import annotations

import tensorflow as tf

from tf3dgan.config import PRIORS

NORMAL_STDDEV = 0.33


def sample_latent(prior: str, shape, seed) -> tf.Tensor:
    """Draws z deterministically from a stateless seed.

    Args:
        prior: "uniform" for Uniform(0, 1) (the official sampler), or "normal"
            for Normal(0, 0.33).
        shape: [batch, latent_dim].
        seed: int32/int64 tensor of shape [2], as for `tf.random.stateless_*`.

    Returns:
        float32 tensor of `shape`.
    """
    if prior == "uniform":
        return tf.random.stateless_uniform(shape, seed=seed, minval=0.0, maxval=1.0)
    if prior == "normal":
        return tf.random.stateless_normal(shape, seed=seed, stddev=NORMAL_STDDEV)
    raise ValueError(f"prior={prior!r} is not supported. Expected one of {PRIORS}.")

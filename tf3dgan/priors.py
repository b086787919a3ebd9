"""The latent prior p(z), shared by training, sampling and export.

Drawing z the same way at training and sampling time matters: a generator
trained on Uniform(0, 1) and sampled with N(0, 1) produces garbage, one of the
causes of the "it only generates a cube" reports against other implementations.

Priors:
    uniform          Uniform(0, 1), the official 3D-GAN sampler.
    normal           Normal(0, 0.33), a common alternative for the 3D-GAN.
    standard_normal  Normal(0, 1): the 3D-VAE-GAN's, whose KL term pulls the
                     encoder's q(z|y) towards N(0, I), so its generator must be
                     sampled from N(0, I) too.
"""

from __future__ import annotations

import tensorflow as tf

from tf3dgan.config import PRIORS

NORMAL_STDDEV = 0.33


def sample_latent(prior: str, shape, seed) -> tf.Tensor:
    """Draws z deterministically from a stateless seed.

    Args:
        prior: "uniform" for Uniform(0, 1) (the official sampler), "normal"
            for Normal(0, 0.33), or "standard_normal" for Normal(0, 1).
        shape: [batch, latent_dim].
        seed: int32/int64 tensor of shape [2], as for `tf.random.stateless_*`.

    Returns:
        float32 tensor of `shape`.

    Raises:
        ValueError: if `prior` is not supported.
    """
    if prior == "uniform":
        return tf.random.stateless_uniform(shape, seed=seed, minval=0.0, maxval=1.0)
    if prior == "normal":
        return tf.random.stateless_normal(shape, seed=seed, stddev=NORMAL_STDDEV)
    if prior == "standard_normal":
        return tf.random.stateless_normal(shape, seed=seed)
    raise ValueError(f"prior={prior!r} is not supported. Expected one of {PRIORS}.")


def sample_latent_per_seed(prior: str, seeds, latent_dim: int) -> tf.Tensor:
    """Draws one z per seed: row i depends on `seeds[i]` alone, not on the batch.

    Row i equals `sample_latent(prior, [1, latent_dim], [seeds[i], 0])[0]`, so a
    client that asks the exported `sample` signature for seed s gets the z that
    `GAN3D.sample_latent(1, seed=s)` draws in-process.

    Args:
        prior: "uniform", "normal" or "standard_normal", as for `sample_latent`.
        seeds: int64 [batch] (any integers, negative ones included).
        latent_dim: Size of z.

    Returns:
        float32 [batch, latent_dim].

    Raises:
        ValueError: if `prior` is not supported.
    """
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    zero = tf.constant(0, tf.int64)
    return tf.map_fn(
        lambda seed: sample_latent(prior, [latent_dim], tf.stack([seed, zero])),
        seeds, fn_output_signature=tf.TensorSpec([latent_dim], tf.float32))

"""Drawing samples from a trained generator, and copying it out of a strategy."""

from __future__ import annotations

import numpy as np

from tf3dgan import priors
from tf3dgan.models.generator import Generator


def standalone_generator(generator: Generator) -> Generator:
    """A copy of `generator` outside any distribution strategy, with the same weights.

    Sampling and export use the copy, so that neither depends on the devices
    or the strategy the model was trained with.
    """
    copy = Generator.from_config(generator.get_config())
    copy.build()
    copy.set_weights(generator.get_weights())
    return copy


def sample_voxels(generator: Generator, prior: str, num_samples: int, seed: int) -> np.ndarray:
    """Draws `num_samples` grids [N, R, R, R] of occupancy probabilities from `prior`."""
    z = priors.sample_latent(prior, [num_samples, generator.latent_dim], [seed, 0])
    return np.asarray(generator(z, training=False))

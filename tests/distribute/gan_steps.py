"""Trains a 3D-GAN for a few steps the way the replica tests compare it.

Shared by tests/distribute/test_mirrored.py (in the pytest process) and
replicas_in_own_process.py (in a process of its own), so that both compare one
device and two replicas on the same data, seed and optimizer.
"""

import keras
import numpy as np

from tf3dgan.data import pipeline
from tf3dgan.models.gan import build_gan


def train_gan(cfg, strategy, steps=1):
    """Builds the GAN of `cfg` under `strategy`, trains `steps` steps; returns (gan, history)."""
    keras.utils.set_random_seed(7)
    with strategy.scope():
        gan = build_gan(cfg.model, cfg.train)
        # Plain SGD: unlike Adam, its step is proportional to the gradient, so
        # a loss scaled wrongly for the number of replicas would show.
        gan.compile(g_optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5))
    voxels = (np.random.default_rng(3).random((16, 16, 16, 16)) > 0.7).astype(np.uint8)
    dataset = pipeline.training_dataset(voxels, cfg.train.batch_size, seed=0)
    history = gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False).history
    return gan, history

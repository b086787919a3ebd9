"""Keras callbacks that make a training run durable and visible."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf3dgan.data import render
from tf3dgan.sampling import sample_voxels, standalone_generator

logger = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The losses or weights stopped being finite."""


def _scalar(value) -> float:
    return float(np.mean(np.asarray(value)))


class CheckpointEveryEpoch(keras.callbacks.Callback):
    """Saves a checkpoint at each epoch end, after checking that the run is still finite.

    A NaN or infinite loss, or a non-finite weight, stops the run with an error
    before anything is saved, so the last good checkpoint is never overwritten.
    Under MultiWorkerMirroredStrategy every worker must take part in the save;
    the chief writes to `manager`, the others to a scratch manager.
    """

    def __init__(self, gan, manager: tf.train.CheckpointManager):
        super().__init__()
        self.gan = gan
        self.manager = manager

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.gan.step_counter.numpy())
        bad_logs = {name: value for name, value in (logs or {}).items()
                    if not math.isfinite(_scalar(value))}
        bad_weights = [weight.path for weight in self.gan.weights
                       if weight.dtype != "bool" and not np.all(np.isfinite(weight.numpy()))]
        if bad_logs or bad_weights:
            last = self.manager.latest_checkpoint or "none yet"
            problems = []
            if bad_logs:
                problems.append(f"non-finite {', '.join(sorted(bad_logs))}")
            if bad_weights:
                problems.append(f"non-finite weights {bad_weights[:3]}")
            raise TrainingDivergedError(
                f"Training diverged by step {step}: {'; '.join(problems)}. Nothing was saved; "
                f"the last good checkpoint is {last}. Lower --generator_learning_rate / "
                "--discriminator_learning_rate, or check the data for NaNs, then run the same "
                "command again to resume from that checkpoint.")
        self.manager.save(checkpoint_number=step)


class SampleImages(keras.callbacks.Callback):
    """Every epoch, renders samples from fixed z to a PNG grid and to TensorBoard."""

    def __init__(self, gan, directory: Path, writer, num_samples: int, seed: int = 1234):
        super().__init__()
        self.gan = gan
        self.directory = Path(directory)
        self.writer = writer
        self.num_samples = num_samples
        self.seed = seed

    def write(self, name: str) -> Path:
        step = int(self.gan.step_counter.numpy())
        generator = standalone_generator(self.gan.sampling_generator)
        voxels = sample_voxels(generator, self.gan.prior, self.num_samples, self.seed)
        image = render.render_grid(voxels)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.png"
        render.save_png(image, path)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.image("samples", image[None], max_outputs=1)
                tf.summary.scalar("samples/mean_occupancy", float((voxels > 0.5).mean()))
            self.writer.flush()
        return path

    def on_epoch_end(self, epoch, logs=None):
        self.write(f"step_{int(self.gan.step_counter.numpy()):07d}")


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the training metrics to TensorBoard every `every_steps` steps.

    The values are Keras' running means since the start of the epoch.
    """

    def __init__(self, gan, writer, every_steps: int):
        super().__init__()
        self.gan = gan
        self.writer = writer
        self.every_steps = every_steps

    def on_epoch_begin(self, epoch, logs=None):
        # Read the step once per epoch rather than once per batch (a host sync).
        self.epoch_start_step = int(self.gan.step_counter.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch_start_step + batch + 1
        if step % self.every_steps or not logs:
            return
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(f"train/{name}", _scalar(value))

    def on_epoch_end(self, epoch, logs=None):
        self.writer.flush()

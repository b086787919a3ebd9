"""Generation quality and sample meshes in TensorBoard, while a 3D-GAN trains.

- `GenerationMetricsSummaries`: every `every_steps` steps, the cheap metrics of
  `tf3dgan.metrics` (COV, MMD and 1-NNA with the IoU distance, and the occupancy JSD) of
  a fixed set of samples (fixed z) against a fixed subset of the training data, as the
  scalars generation/cov_iou, generation/mmd_iou, generation/1nna_iou, generation/jsd,
  generation/stray_voxels (with generation/reference_stray_voxels, the reference subset's
  own share, written once) and generation/empty_samples. The same z and the same subset at every step make the
  curves comparable along a run and across resumes.
- `SampleMeshes`: at each epoch end, the marching-cubes meshes of a few fixed samples
  through TensorBoard's mesh plugin (tags sample_mesh/<i>), in the plugin's y-up frame,
  centred and scaled to the unit cube.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from tf3dgan import metrics, priors
from tf3dgan.sampling import sample_voxels, standalone_generator

logger = logging.getLogger(__name__)

METRIC_NAMES = ("cov_iou", "mmd_iou", "1nna_iou", "jsd", "stray_voxels", "empty_samples")
# A mesh of an unconverged generator can be noise: beyond this many faces it is not written.
MAX_MESH_FACES = 200_000
MESH_COLOR = (180, 180, 200)


class _GeneratorCopy:
    """A standalone copy of the GAN's generator, refreshed with its current weights."""

    def __init__(self, gan):
        self.gan = gan
        self.copy = None

    def generate(self, z) -> np.ndarray:
        if self.copy is None:
            self.copy = standalone_generator(self.gan.sampling_generator)
        else:
            self.copy.set_weights(self.gan.sampling_generator.get_weights())
        return np.asarray(self.copy(z, training=False), dtype=np.float32)


class GenerationMetricsSummaries(keras.callbacks.Callback):
    """Writes COV/MMD/1-NNA (IoU distance) and the occupancy JSD to TensorBoard every N steps.

    Args:
        gan: The `GAN3D` being trained.
        writer: A `tf.summary` writer.
        training_voxels: {0, 1} grids [M, S, S, S] of the training data (S must divide the
            model's resolution; they are upsampled).
        every_steps: Steps between evaluations (> 0).
        num_samples: Samples generated from fixed z.
        num_reference: Training shapes in the fixed reference subset (all if fewer).
        seed: Seeds z and the subset.
        threshold: Occupancy threshold of the samples.

    Raises:
        ValueError: for every_steps < 1, fewer than 2 training shapes, or a training
            resolution that does not divide the model's.
    """

    def __init__(self, gan, writer, training_voxels, every_steps: int, *, num_samples: int = 64,
                 num_reference: int = 64, seed: int = 4321, threshold: float = 0.5):
        super().__init__()
        from tf3dgan.latent import upsample_to

        if every_steps < 1:
            raise ValueError(f"every_steps must be >= 1, received {every_steps!r} (0 means: do not "
                             "add this callback).")
        shapes = np.asarray(training_voxels)
        if len(shapes) < 2:
            raise ValueError(f"The generation metrics need at least 2 training shapes, received {len(shapes)}.")
        resolution = gan.generator.resolution
        chosen = np.sort(np.random.default_rng(seed).choice(len(shapes), min(num_reference, len(shapes)),
                                                            replace=False))
        self.reference = metrics.ReferenceSet(upsample_to(shapes[chosen] > 0, resolution),
                                              threshold=threshold, distances=("iou",))
        self.reference_indices = chosen
        self.reference_stray_voxels = metrics.stray_voxel_fraction(self.reference.grids)
        self.gan = gan
        self.writer = writer
        self.every_steps = int(every_steps)
        self.z = priors.sample_latent(gan.prior, [num_samples, gan.generator.latent_dim], [seed, 1])
        self.threshold = threshold
        self.last: dict | None = None
        self._generator = _GeneratorCopy(gan)
        self._epoch_start_step = 0

    def compute(self) -> dict:
        """The metrics of the current generator's samples against the reference subset."""
        voxels = self._generator.generate(self.z)
        return self.reference.compare(voxels)

    def write(self, step: int) -> dict:
        """Computes the metrics and writes them at `step`; returns them."""
        values = self.compute()
        with self.writer.as_default(step=step):
            if self.reference_stray_voxels is not None:
                tf.summary.scalar("generation/reference_stray_voxels", self.reference_stray_voxels)
            for name in METRIC_NAMES:
                if values.get(name) is not None:
                    tf.summary.scalar(f"generation/{name}", float(values[name]))
        self.writer.flush()
        self.last = {"step": step, **values}
        return values

    def on_epoch_begin(self, epoch, logs=None):
        # Read the step once per epoch rather than once per batch (a host sync).
        self._epoch_start_step = int(self.gan.step_counter.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = self._epoch_start_step + batch + 1
        if step % self.every_steps == 0:
            self.write(step)


class SampleMeshes(keras.callbacks.Callback):
    """At each epoch end, writes meshes of fixed samples through TensorBoard's mesh plugin.

    Args:
        gan: The `GAN3D` being trained.
        writer: A `tf.summary` writer.
        num_samples: Meshes per epoch.
        seed: Seeds z.
        threshold: Iso-level of the marching cubes.
    """

    def __init__(self, gan, writer, num_samples: int = 4, seed: int = 1234, threshold: float = 0.5):
        super().__init__()
        self.gan = gan
        self.writer = writer
        self.num_samples = int(num_samples)
        self.seed = seed
        self.threshold = threshold
        self.last_written: list[int] = []

    def write(self, step: int) -> list[int]:
        """Writes the meshes at `step`; returns the indices of the samples written
        (an empty or over-large mesh is skipped, with a log line)."""
        from tensorboard.plugins.mesh import summary_v2 as mesh_summary

        from tf3dgan.mesh import to_format_frame, voxels_to_mesh

        generator = standalone_generator(self.gan.sampling_generator)
        voxels = sample_voxels(generator, self.gan.prior, self.num_samples, self.seed)
        resolution = voxels.shape[1]
        written = []
        with self.writer.as_default(step=step):
            for index, grid in enumerate(voxels):
                try:
                    mesh = voxels_to_mesh(grid, self.threshold)
                except ValueError:
                    logger.info("Sample %d is empty at step %d; no mesh written.", index, step)
                    continue
                if len(mesh.faces) > MAX_MESH_FACES:
                    logger.info("Sample %d has %d faces at step %d (more than %d); no mesh written.",
                                index, len(mesh.faces), step, MAX_MESH_FACES)
                    continue
                # TensorBoard's viewer (three.js) is y-up: the glTF frame of tf3dgan.mesh.
                upright = to_format_frame(mesh, "glb", resolution)
                vertices = (np.asarray(upright.vertices, np.float32) - resolution / 2) / resolution
                colors = np.tile(np.asarray(MESH_COLOR, np.uint8), (len(vertices), 1))
                mesh_summary.mesh(f"sample_mesh/{index}", vertices=vertices[None],
                                  faces=np.asarray(upright.faces, np.int32)[None], colors=colors[None],
                                  step=step)
                written.append(index)
        self.writer.flush()
        self.last_written = written
        return written

    def on_epoch_end(self, epoch, logs=None):
        self.write(int(self.gan.step_counter.numpy()))

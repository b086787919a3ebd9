"""The 3D-GAN generator: z -> a grid of occupancy probabilities."""

from __future__ import annotations

import keras

from tf3dgan.models import layout
from tf3dgan.models.batch_normalization import BatchNormalization
from tf3dgan.models.strided_conv3d_transpose import StridedConv3DTranspose


@keras.saving.register_keras_serializable(package="tf3dgan")
class Generator(keras.Model):
    """Maps a latent vector z to a voxel grid, as in Wu et al. (2016).

    Five bias-free volumetric transposed convolutions (kernel 4): the first maps
    z, seen as a 1^3 grid with `latent_dim` channels, to the seed grid ('valid');
    the next four double the grid (stride 2, 'same'). BatchNorm + ReLU between
    layers, a sigmoid at the end: outputs are occupancy probabilities in [0, 1],
    matching {0, 1} training data (a tanh output on {0, 1} data is one cause of
    the "it only generates a cube" failure).

    Args:
        resolution: Output grid edge: 64 (paper), 32 or 16.
        latent_dim: Size of z.
        base_filters: Width of the last hidden layer; hidden widths are 8, 4, 2, 1
            times this (512-256-128-64 in the paper).
        synchronized_batchnorm: Compute BatchNorm statistics over the global batch
            under a distribution strategy.
        **kwargs: Passed to `keras.Model` (name, dtype).

    Call arguments:
        z: float [batch, latent_dim].
        training: BatchNorm uses batch statistics (and updates its moving
            averages) when True, the moving averages when False.

    Returns:
        float32 [batch, resolution, resolution, resolution].
    """

    def __init__(self, resolution=64, latent_dim=200, base_filters=64,
                 synchronized_batchnorm=True, **kwargs):
        super().__init__(**kwargs)
        layout.check_resolution(resolution)
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.base_filters = base_filters
        self.synchronized_batchnorm = synchronized_batchnorm

        self.to_grid = keras.layers.Reshape((1, 1, 1, latent_dim), name="z_as_grid")
        self.hidden_blocks = []
        seed = layout.seed_size(resolution)
        for index, filters in enumerate(layout.generator_widths(base_filters)):
            first = index == 0
            if first:  # z as a 1^3 grid -> the seed grid
                deconv = keras.layers.Conv3DTranspose(
                    filters, kernel_size=seed, strides=1, padding="valid",
                    use_bias=False,  # BatchNorm's offset makes a bias redundant.
                    name=f"deconv{index + 1}")
            else:
                deconv = StridedConv3DTranspose(filters, use_bias=False, name=f"deconv{index + 1}")
            self.hidden_blocks.append([
                deconv,
                BatchNormalization(
                    momentum=0.9, synchronized=synchronized_batchnorm, name=f"bn{index + 1}"
                ),
                keras.layers.ReLU(name=f"relu{index + 1}"),
            ])
        self.output_deconv = StridedConv3DTranspose(
            1, use_bias=False, name=f"deconv{len(self.hidden_blocks) + 1}")
        # float32 output even under a mixed-precision policy, so exported
        # signatures return DT_FLOAT rather than DT_HALF / DT_BFLOAT16.
        self.output_activation = keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid")
        self.to_voxels = keras.layers.Reshape((resolution,) * 3, dtype="float32", name="voxels")

    @property
    def conv_layers(self) -> list:
        """The five transposed convolutions, input to output."""
        return [block[0] for block in self.hidden_blocks] + [self.output_deconv]

    def build(self, input_shape=None):
        # Subclassed models have no symbolic inputs: build every layer now so the
        # variables exist (inside a strategy scope) before optimizers and checkpoints.
        self.call(keras.ops.zeros((1, self.latent_dim)), training=False)

    def call(self, z, training=False):
        return self.output_activation(self.logits(z, training=training))

    def logits(self, z, training=False):
        """G(z) before its sigmoid, float32 [batch, R, R, R].

        A cross-entropy on the voxels is computed from these: from the
        probabilities it would be clipped, with no gradient, where the float32
        sigmoid saturates.
        """
        x = self.to_grid(z)
        for deconv, batchnorm, activation in self.hidden_blocks:
            x = activation(batchnorm(deconv(x), training=training))
        return self.to_voxels(keras.ops.cast(self.output_deconv(x), "float32"))

    def get_config(self):
        return {
            "resolution": self.resolution,
            "latent_dim": self.latent_dim,
            "base_filters": self.base_filters,
            "synchronized_batchnorm": self.synchronized_batchnorm,
            "name": self.name,
            "dtype": self.dtype_policy.name,
        }

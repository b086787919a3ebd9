"""The 3D-GAN discriminator: a voxel grid -> one real/fake logit."""

from __future__ import annotations

import keras

from tf3dgan.config import DISCRIMINATOR_NORMALIZATIONS
from tf3dgan.grid_rotation import QUARTER_TURNS
from tf3dgan.models import layout
from tf3dgan.models.batch_normalization import BatchNormalization
from tf3dgan.models.spectral_normalization import SpectralConv3D, SpectralStridedConv3D
from tf3dgan.models.strided_conv3d import StridedConv3D


@keras.saving.register_keras_serializable(package="tf3dgan")
class Discriminator(keras.Model):
    """Mirror image of the generator, as in Wu et al. (2016).

    Four bias-free volumetric convolutions (kernel 4, stride 2, 'same') with
    widths 64-128-256-512 in the paper, LeakyReLU(0.2), BatchNorm after every
    one but the first (the DCGAN convention: normalizing the input layer makes
    training unstable), and a fifth convolution that maps the seed grid to one
    logit ('valid'). With normalization="spectral", every convolution is
    spectrally normalized instead and there is no BatchNorm; with "none", there
    is neither. With rotation_head, a second linear output on the 4th layer's
    response predicts a grid's quarter turn about the up axis (SS-GAN, Chen et
    al. 2019); the recognition features are the same layers either way.

    Args:
        resolution: Input grid edge: 64 (paper), 32 or 16.
        base_filters: Width of the first layer (64 in the paper).
        synchronized_batchnorm: Compute BatchNorm statistics over the global batch
            under a distribution strategy.
        normalization: How D keeps its layers in range: "batchnorm" (the paper),
            "spectral" (SN-GAN) or "none" (a WGAN-GP critic).
        rotation_head: Add the rotation output (`logits_and_rotation_logits`).
        **kwargs: Passed to `keras.Model` (name, dtype).

    Call arguments:
        voxels: float [batch, resolution, resolution, resolution], values in [0, 1].
        training: BatchNorm mode, as for the generator.

    Returns:
        float32 logits [batch, 1].
    """

    def __init__(self, resolution=64, base_filters=64, synchronized_batchnorm=True,
                 normalization="batchnorm", rotation_head=False, **kwargs):
        super().__init__(**kwargs)
        layout.check_resolution(resolution)
        if normalization not in DISCRIMINATOR_NORMALIZATIONS:
            raise ValueError(f"normalization={normalization!r} is not supported; expected one of "
                             f"{DISCRIMINATOR_NORMALIZATIONS} (--discriminator_normalization).")
        self.resolution = resolution
        self.base_filters = base_filters
        self.synchronized_batchnorm = synchronized_batchnorm
        self.normalization = normalization
        spectral = normalization == "spectral"
        strided_conv, output_conv = ((SpectralStridedConv3D, SpectralConv3D) if spectral
                                     else (StridedConv3D, keras.layers.Conv3D))

        self.add_channel = keras.layers.Reshape((resolution,) * 3 + (1,), name="add_channel")
        self.hidden_blocks = []
        for index, filters in enumerate(layout.discriminator_widths(base_filters)):
            conv = strided_conv(filters, use_bias=False, name=f"conv{index + 1}")
            batchnorm = None if index == 0 or normalization != "batchnorm" else BatchNormalization(
                momentum=0.9, synchronized=synchronized_batchnorm, name=f"bn{index + 1}"
            )
            self.hidden_blocks.append((conv, batchnorm, keras.layers.LeakyReLU(0.2, name=f"lrelu{index + 1}")))
        self.output_conv = output_conv(
            1, kernel_size=layout.seed_size(resolution), padding="valid",
            use_bias=False, name=f"conv{len(self.hidden_blocks) + 1}",
        )
        self.to_logit = keras.layers.Reshape((1,), dtype="float32", name="logit")
        self.rotation_head = bool(rotation_head)
        if self.rotation_head:
            # A linear classifier on the 4th layer's response, as the real/fake output is.
            self.rotation_conv = keras.layers.Conv3D(
                QUARTER_TURNS, kernel_size=layout.seed_size(resolution), padding="valid",
                name="rotation")
            self.to_rotation_logits = keras.layers.Reshape(
                (QUARTER_TURNS,), dtype="float32", name="rotation_logits")

    @property
    def conv_layers(self) -> list:
        """The five convolutions, input to output."""
        return [block[0] for block in self.hidden_blocks] + [self.output_conv]

    def build(self, input_shape=None):
        voxels = keras.ops.zeros((1,) + (self.resolution,) * 3)
        if self.rotation_head:
            self.logits_and_rotation_logits(voxels, training=False)
        else:
            self.call(voxels, training=False)

    def _hidden_responses(self, voxels, training):
        x = self.add_channel(voxels)
        responses = []
        for conv, batchnorm, activation in self.hidden_blocks:
            x = conv(x, training=training)
            if batchnorm is not None:
                x = batchnorm(x, training=training)
            x = activation(x)
            responses.append(x)
        return responses

    def call(self, voxels, training=False):
        return self.logits_and_last_hidden(voxels, training)[0]

    def logits_and_last_hidden(self, voxels, training=False):
        """The logits and the 4th layer's response (what feature matching compares), in one pass."""
        last_hidden = self._hidden_responses(voxels, training)[-1]
        return self.to_logit(self.output_conv(last_hidden, training=training)), last_hidden

    def logits_and_rotation_logits(self, voxels, training=False):
        """The real/fake logits [batch, 1] and the rotation logits [batch, 4] (one per
        quarter turn about z), in one pass; needs rotation_head."""
        if not self.rotation_head:
            raise ValueError("This discriminator was built without rotation_head; build it "
                             "with rotation_head=True (--rotation_head true).")
        logits, last_hidden = self.logits_and_last_hidden(voxels, training)
        return logits, self.to_rotation_logits(self.rotation_conv(last_hidden))

    def features(self, voxels, training=False):
        """Responses of the 2nd, 3rd and 4th convolution layers (after activation).

        These are the paper's recognition features before pooling: at 64^3,
        [batch, 16, 16, 16, 128], [batch, 8, 8, 8, 256] and [batch, 4, 4, 4, 512].

        Returns:
            A list of three float tensors, channels last.
        """
        return self._hidden_responses(voxels, training)[1:4]

    def get_config(self):
        return {
            "resolution": self.resolution,
            "base_filters": self.base_filters,
            "synchronized_batchnorm": self.synchronized_batchnorm,
            "normalization": self.normalization,
            "rotation_head": self.rotation_head,
            "name": self.name,
            "dtype": self.dtype_policy.name,
        }

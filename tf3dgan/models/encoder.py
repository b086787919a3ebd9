"""The 3D-VAE-GAN image encoder: an RGB image -> the mean and log-variance of z."""

from __future__ import annotations

import keras

from tf3dgan.config import SUPPORTED_IMAGE_SIZES
from tf3dgan.models.batch_normalization import BatchNormalization

# The paper's kernels, input to output; every layout keeps them.
KERNEL_SIZES = (11, 5, 5, 5, 8)
# Strides of each layout, by input edge. The first four layers bring every input
# to the 8x8 map that the paper's last, kernel-8 'valid' layer reduces to 1x1:
# the first layer's stride is image_size / 32, at most 4 (the paper's), then
# stride 2 while the map is above 8x8, and 1 after.
STRIDES = {
    256: (4, 2, 2, 2, 1),
    128: (4, 2, 2, 1, 1),
    64: (2, 2, 2, 1, 1),
    32: (1, 2, 2, 1, 1),
}
# Edge of the map each layer outputs, by input edge ('same' padding, then 'valid').
FEATURE_SIZES = {
    256: (64, 32, 16, 8, 1),
    128: (32, 16, 8, 8, 1),
    64: (32, 16, 8, 8, 1),
    32: (32, 16, 8, 8, 1),
}
NUM_HIDDEN_LAYERS = 4


def check_image_size(image_size: int) -> None:
    """Raises ValueError unless the encoder has a layout for `image_size`."""
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"image_size={image_size!r} is not supported. Expected one of "
            f"{SUPPORTED_IMAGE_SIZES} (256 is the paper's encoder, 64 the CPU variant); "
            "resize the images to one of them.")


def hidden_widths(base_filters: int) -> list[int]:
    """Output channels of the four hidden layers: 64, 128, 256, 512 in the paper."""
    return [base_filters * 2**index for index in range(NUM_HIDDEN_LAYERS)]


@keras.saving.register_keras_serializable(package="tf3dgan")
class ImageEncoder(keras.Model):
    """Maps an RGB image to q(z|y) = N(z_mean, exp(z_log_var)), as in Wu et al. (2016).

    Five 2D convolutions with the paper's kernels 11, 5, 5, 5, 8. The first four
    are bias-free, 'same'-padded and followed by BatchNorm + ReLU; the fifth is a
    'valid' convolution of the 8x8 map they leave to a 1x1 map with
    2 * latent_dim channels (with a bias, no normalization, no activation), whose
    first half is z_mean and second half z_log_var: one layer for both, as the
    paper's channel list 64-128-256-512-400 (= 2 x 200) has it.

    Layouts (kernel/stride of each layer, and the map edge it outputs):

        image_size  layer 1     layer 2    layer 3    layer 4    layer 5
        256         11/4  64    5/2  32    5/2  16    5/2  8     8/1  1   (the paper)
        128         11/4  32    5/2  16    5/2  8     5/1  8     8/1  1
        64          11/2  32    5/2  16    5/2  8     5/1  8     8/1  1   (the 32^3 CPU network)
        32          11/1  32    5/2  16    5/2  8     5/1  8     8/1  1   (tests)

    Smaller inputs keep the five layers and all the kernels and change only the
    strides, so that every layout ends on the paper's 8x8 map before the kernel-8
    layer. Widths are 1, 2, 4, 8 times `base_filters` for the hidden layers (64
    gives the paper's 64-128-256-512) and 2 * latent_dim for the last.

    Images are float RGB in [0, 1]; the first layer sees them rescaled to [-1, 1].

    Args:
        latent_dim: Size of z (200 in the paper).
        image_size: Edge of the square input: 256, 128, 64 or 32.
        base_filters: Width of the first layer.
        synchronized_batchnorm: Compute BatchNorm statistics over the global batch
            under a distribution strategy.
        **kwargs: Passed to `keras.Model` (name, dtype).

    Call arguments:
        images: float [batch, image_size, image_size, 3], values in [0, 1].
        training: BatchNorm uses batch statistics (and updates its moving
            averages) when True, the moving averages when False.

    Returns:
        (z_mean, z_log_var), each float32 [batch, latent_dim].

    Raises:
        ValueError: for an unsupported image_size or non-positive sizes; when
            called, for images of another size.
    """

    def __init__(self, latent_dim=200, image_size=256, base_filters=64,
                 synchronized_batchnorm=True, **kwargs):
        super().__init__(**kwargs)
        check_image_size(image_size)
        for name, value in (("latent_dim", latent_dim), ("base_filters", base_filters)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, received {name}={value!r}.")
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.base_filters = base_filters
        self.synchronized_batchnorm = synchronized_batchnorm

        self.rescale = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")
        self.hidden_blocks = []
        strides = STRIDES[image_size]
        for index, filters in enumerate(hidden_widths(base_filters)):
            self.hidden_blocks.append([
                keras.layers.Conv2D(
                    filters, KERNEL_SIZES[index], strides=strides[index], padding="same",
                    use_bias=False,  # BatchNorm's offset makes a bias redundant.
                    name=f"conv{index + 1}"),
                BatchNormalization(
                    momentum=0.9, synchronized=synchronized_batchnorm, name=f"bn{index + 1}"),
                keras.layers.ReLU(name=f"relu{index + 1}"),
            ])
        self.output_conv = keras.layers.Conv2D(
            2 * latent_dim, KERNEL_SIZES[-1], strides=strides[-1], padding="valid",
            name=f"conv{NUM_HIDDEN_LAYERS + 1}")
        # float32 even under a mixed-precision policy: the KL term exponentiates z_log_var.
        self.flatten = keras.layers.Reshape((2 * latent_dim,), dtype="float32", name="moments")

    @property
    def conv_layers(self) -> list:
        """The five convolutions, input to output."""
        return [block[0] for block in self.hidden_blocks] + [self.output_conv]

    def build(self, input_shape=None):
        # Build every layer now so the variables exist (inside a strategy scope)
        # before optimizers and checkpoints.
        self.call(keras.ops.zeros((1, self.image_size, self.image_size, 3)), training=False)

    def call(self, images, training=False):
        expected = (self.image_size, self.image_size, 3)
        received = tuple(images.shape[1:])
        if len(received) != 3 or any(r is not None and r != e for r, e in zip(received, expected)):
            raise ValueError(
                f"{self.name} reads images of shape [batch, {self.image_size}, {self.image_size}, 3], "
                f"received shape {tuple(images.shape)}. Resize the images to {self.image_size}x"
                f"{self.image_size} RGB, or build the encoder with another image_size.")
        x = self.rescale(images)
        for conv, batchnorm, activation in self.hidden_blocks:
            x = activation(batchnorm(conv(x), training=training))
        moments = self.flatten(self.output_conv(x))
        z_mean, z_log_var = keras.ops.split(moments, 2, axis=-1)
        return z_mean, z_log_var

    def get_config(self):
        return {
            "latent_dim": self.latent_dim,
            "image_size": self.image_size,
            "base_filters": self.base_filters,
            "synchronized_batchnorm": self.synchronized_batchnorm,
            "name": self.name,
            "dtype": self.dtype_policy.name,
        }

"""The serving signatures of an exported 3D-GAN: what each takes and returns.

    serving_default         z float32 [batch, latent_dim]
                            -> voxels float32 [batch, R, R, R], occupancy probabilities
    sample                  seed int64 [batch]
                            -> z float32 [batch, latent_dim], voxels float32 [batch, R, R, R]
    occupancy               z float32 [batch, latent_dim], threshold float32 [] or [batch]
                            -> occupancy uint8 [batch, R, R, R/8] (bit-packed),
                               occupied_count int64 [batch]
    discriminator_features  voxels float32 [batch, R, R, R]
                            -> features float32 [batch, F], logits float32 [batch, 1]

Every signature runs BatchNorm in inference mode, has a dynamic batch
dimension and returns float32 (not bfloat16) under a mixed-precision policy.

`sample` draws z for seed s from the training prior with a stateless RNG
(`priors.sample_latent_per_seed`): the same seed gives the same z and shape
in-process and served, whatever else is in the batch.

`occupancy` packs (voxels > threshold) along the last (z) axis, 8 voxels per
byte, most significant bit first (NumPy's bitorder="big"): bit 7 - j of byte
[i, x, y, k] is voxel [i, x, y, 8k + j]. A client unpacks it with
`numpy.unpackbits(occupancy, axis=-1, bitorder="big").astype(bool)` (see
`unpack_occupancy`). A 64^3 sample is 32 KiB instead of 1 MiB of floats.

`discriminator_features` returns the recognition features of
`tf3dgan.recognition_features` (F = 7,168 at 64^3 and 32^3 with the paper's
widths) and D's real/fake logit.

A 3D-VAE-GAN (a model with an image encoder) has two more, image -> shape:

    reconstruct             images float32 [batch, H, W, 3], RGB in [0, 1]
                            -> voxels float32 [batch, R, R, R] (G(z_mean)),
                               z_mean float32 [batch, latent_dim]
    reconstruct_bytes       image_bytes string [batch], PNG/JPEG/GIF/BMP/WebP files
                            -> voxels, z_mean as `reconstruct`

Two signatures, not one with both inputs: a SignatureDef's inputs are all
required (TF Serving refuses a request that leaves one out), and a single-input
signature takes REST's row format, `{"instances": [{"b64": "..."}]}`.
Images of any size are resized to the encoder's `image_size` (bilinear with
antialiasing, aspect ratio not kept: crop to a square around the object first);
an image already of that size passes unchanged. `reconstruct_bytes` decodes each
file in the graph (`tf.io.decode_image`, first frame of an animation; 16-bit
PNGs are reduced to 8 bits), scales it by 1/255, turns grey into RGB and
composites an alpha channel over the renders' background colour
(`IMAGE_BACKGROUND`), so a PNG of an 8-bit image `x` gives exactly the result of
`reconstruct` on `x / 255`. Images in one request may have different sizes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf3dgan import priors
from tf3dgan.data.render import BACKGROUND_COLOR
from tf3dgan.recognition_features import pool_responses

SERVING_DEFAULT = "serving_default"
SAMPLE = "sample"
OCCUPANCY = "occupancy"
DISCRIMINATOR_FEATURES = "discriminator_features"
SIGNATURE_NAMES = (SERVING_DEFAULT, SAMPLE, OCCUPANCY, DISCRIMINATOR_FEATURES)
RECONSTRUCT = "reconstruct"
RECONSTRUCT_BYTES = "reconstruct_bytes"
RECONSTRUCTION_SIGNATURE_NAMES = (RECONSTRUCT, RECONSTRUCT_BYTES)
# The renders' background (tf3dgan.data.render), in [0, 1]: what transparent pixels become.
IMAGE_BACKGROUND = tuple(float(value) / 255.0 for value in BACKGROUND_COLOR)

OCCUPANCY_BITORDER = "big"
_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)  # "big": the first voxel is the high bit

SUMMARIES = {
    SERVING_DEFAULT: "Occupancy probabilities G(z) for latent vectors z from the training prior.",
    SAMPLE: "One sample per int64 seed: z drawn from the training prior with a stateless RNG, "
            "and G(z). Deterministic per seed.",
    OCCUPANCY: "G(z) > threshold, bit-packed along the last axis (8 voxels per byte, most "
               "significant bit first: numpy.unpackbits(occupancy, axis=-1, bitorder='big')), "
               "and the number of occupied voxels per sample. threshold is a scalar or one value "
               "per sample ([batch]; required under TF Serving's --enable_batching).",
    DISCRIMINATOR_FEATURES: "The paper's recognition features (D's layers 2-4, each max-pooled "
                            "to 2x2x2 and concatenated) and D's real/fake logit.",
    RECONSTRUCT: "Image -> shape (3D-VAE-GAN): RGB images in [0, 1], any size (resized to the "
                 "encoder's image_size), -> G(z_mean) and z_mean.",
    RECONSTRUCT_BYTES: "Image -> shape (3D-VAE-GAN) from encoded image files (PNG, JPEG, GIF, BMP, "
                       "WebP), decoded in the graph; grey becomes RGB, alpha is composited over the "
                       "render background. -> G(z_mean) and z_mean.",
}


def signature_names(has_encoder: bool) -> tuple[str, ...]:
    """The signatures an export holds: the 3D-GAN's four, plus the two image ones with an encoder."""
    return SIGNATURE_NAMES + (RECONSTRUCTION_SIGNATURE_NAMES if has_encoder else ())


def pack_occupancy(voxels, threshold):
    """Bit-packs (voxels > threshold) along the last axis.

    Args:
        voxels: float32 [batch, R, R, R], R a multiple of 8.
        threshold: float32 [] or [batch] (or [1]).

    Returns:
        (occupancy uint8 [batch, R, R, R/8], occupied_count int64 [batch]).

    Raises:
        tf.errors.InvalidArgumentError: at run time, if `threshold` has another
            shape (the served signature answers INVALID_ARGUMENT with this text).
    """
    voxels = tf.convert_to_tensor(voxels, tf.float32)
    threshold = tf.convert_to_tensor(threshold, tf.float32)
    batch = tf.shape(voxels)[0]
    size = tf.size(threshold)
    message = ("threshold must be a scalar or hold one value per sample (shape [batch]); "
               "send e.g. 0.5 or [0.5, 0.5, ...]")
    checks = [
        tf.debugging.assert_less_equal(tf.rank(threshold), 1, message=message),
        tf.debugging.assert_equal(tf.logical_or(size == 1, size == batch), True, message=message),
    ]
    with tf.control_dependencies(checks):
        per_sample = tf.broadcast_to(tf.reshape(threshold, [-1]), [batch])
    occupied = voxels > tf.reshape(per_sample, [-1, 1, 1, 1])
    edge = voxels.shape[-1]
    bits = tf.reshape(tf.cast(occupied, tf.int32), tf.concat([tf.shape(voxels)[:3], [edge // 8, 8]], 0))
    packed = tf.cast(tf.reduce_sum(bits * tf.constant(_BIT_WEIGHTS, tf.int32), axis=-1), tf.uint8)
    count = tf.reduce_sum(tf.cast(occupied, tf.int64), axis=[1, 2, 3])
    return packed, count


def unpack_occupancy(occupancy: np.ndarray) -> np.ndarray:
    """A client's inverse of the `occupancy` output: bool [batch, R, R, R].

    Args:
        occupancy: uint8 [batch, R, R, R/8], as the signature returns it.

    Returns:
        bool [batch, R, R, R], True where the probability was above the threshold.
    """
    return np.unpackbits(np.asarray(occupancy, np.uint8), axis=-1, bitorder=OCCUPANCY_BITORDER).astype(bool)


def signature_functions(generator, discriminator, prior: str) -> dict:
    """The four signatures as `tf.function`s with named input signatures.

    Args:
        generator: A built `Generator` (not under a distribution strategy).
        discriminator: A built `Discriminator` of the same resolution.
        prior: The prior the generator was trained with ("uniform" or "normal").

    Returns:
        {signature name: tf.function}; each returns a dict of named outputs.

    Raises:
        ValueError: if the networks' resolutions differ, the resolution is not a
            multiple of 8, or the prior is unknown.
    """
    resolution = generator.resolution
    latent_dim = generator.latent_dim
    if discriminator.resolution != resolution:
        raise ValueError(
            f"The generator makes {resolution}^3 grids but the discriminator reads "
            f"{discriminator.resolution}^3 grids; export the networks of one GAN.")
    if resolution % 8:
        raise ValueError(f"Bit-packing needs a resolution that is a multiple of 8, received {resolution}.")
    priors.sample_latent(prior, [1, 1], [0, 0])  # an unknown prior fails here, not at serving time
    grid = [None, resolution, resolution, resolution]

    def generate(z):
        return tf.cast(generator(z, training=False), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
    def serving_default(z):
        return {"voxels": generate(z)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seed")])
    def sample(seed):
        z = priors.sample_latent_per_seed(prior, seed, latent_dim)
        return {"z": z, "voxels": generate(z)}

    # Unknown rank: a scalar threshold, or one per sample.
    @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z"),
                                  tf.TensorSpec(None, tf.float32, name="threshold")])
    def occupancy(z, threshold):
        packed, count = pack_occupancy(generate(z), threshold)
        return {"occupancy": packed, "occupied_count": count}

    @tf.function(input_signature=[tf.TensorSpec(grid, tf.float32, name="voxels")])
    def discriminator_features(voxels):
        responses = discriminator.features(voxels, training=False)
        # D's logit from its 4th layer, as Discriminator.call computes it, without
        # running layers 1-4 a second time.
        logits = discriminator.to_logit(discriminator.output_conv(responses[-1]))
        return {"features": pool_responses(responses), "logits": tf.cast(logits, tf.float32)}

    return {SERVING_DEFAULT: serving_default, SAMPLE: sample, OCCUPANCY: occupancy,
            DISCRIMINATOR_FEATURES: discriminator_features}


def resize_images(images, image_size: int):
    """Brings RGB images to image_size x image_size, as the `reconstruct` signatures do.

    Bilinear with antialiasing (a photo shrunk 16 times does not alias); the
    aspect ratio is not kept. At the same size the images come back unchanged.

    Args:
        images: float32 [batch, H, W, 3] (or [H, W, 3]) in [0, 1].
        image_size: The encoder's input size.

    Returns:
        float32 [batch, image_size, image_size, 3] (or [image_size, image_size, 3]).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    return tf.image.resize(images, [image_size, image_size], method="bilinear", antialias=True)


def decode_image(image_bytes, image_size: int, background=IMAGE_BACKGROUND):
    """One encoded image file -> float32 RGB [image_size, image_size, 3] in [0, 1].

    Decodes PNG, JPEG, GIF (first frame), BMP and WebP to 8 bits per channel,
    scales by 1/255 (exactly x / 255), turns grey into RGB, composites an alpha
    channel over `background`, and resizes with `resize_images`.

    Args:
        image_bytes: A string scalar tensor: the file's bytes.
        image_size: The encoder's input size.
        background: RGB in [0, 1] behind transparent pixels.

    Returns:
        float32 [image_size, image_size, 3].

    Raises:
        tf.errors.InvalidArgumentError: at run time, for bytes that are not an
            image ("Unknown image file format. One of JPEG, ... required.").
    """
    decoded = tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8, expand_animations=False)
    pixels = tf.cast(decoded, tf.float32) / 255.0
    channels = tf.shape(pixels)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # grey + alpha (2) or RGBA (4)
    colour_channels = channels - tf.cast(has_alpha, tf.int32)
    colour = pixels[..., :colour_channels]
    colour = tf.cond(tf.equal(colour_channels, 1), lambda: tf.tile(colour, [1, 1, 3]), lambda: colour)
    colour = tf.ensure_shape(colour, [None, None, 3])
    alpha = tf.cond(has_alpha, lambda: pixels[..., -1:], lambda: tf.ones_like(pixels[..., :1]))
    backdrop = tf.constant(background, tf.float32)
    # Opaque pixels (alpha 1) keep their colour exactly.
    composited = colour * alpha + backdrop * (1.0 - alpha)
    return resize_images(composited, image_size)


def decode_images(image_bytes, image_size: int, background=IMAGE_BACKGROUND):
    """A batch of encoded image files (string [batch]) -> float32 [batch, image_size, image_size, 3].

    Each file is decoded on its own (`decode_image`), so their sizes and
    formats may differ.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return tf.map_fn(lambda data: decode_image(data, image_size, background), image_bytes,
                     fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))


def reconstruction_functions(generator, encoder) -> dict:
    """The `reconstruct` and `reconstruct_bytes` signatures of a 3D-VAE-GAN.

    Both return voxels = G(z_mean) and z_mean, with BatchNorm in inference
    mode, as `VAEGAN3D.reconstruct` computes them.

    Args:
        generator: A built `Generator` (not under a distribution strategy).
        encoder: A built `ImageEncoder` whose latent size is the generator's;
            its `image_size` is the size images are brought to.

    Returns:
        {RECONSTRUCT: tf.function, RECONSTRUCT_BYTES: tf.function}.

    Raises:
        ValueError: if the encoder's latent size differs from the generator's.
    """
    if encoder.latent_dim != generator.latent_dim:
        raise ValueError(
            f"The encoder outputs {encoder.latent_dim}-d codes but the generator reads "
            f"{generator.latent_dim}-d z; export the encoder and generator of one VAE-GAN.")
    image_size = int(encoder.image_size)

    def reconstruct_from(images):
        z_mean, _ = encoder(images, training=False)
        z_mean = tf.cast(z_mean, tf.float32)
        return {"voxels": tf.cast(generator(z_mean, training=False), tf.float32), "z_mean": z_mean}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def reconstruct(images):
        return reconstruct_from(resize_images(images, image_size))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def reconstruct_bytes(image_bytes):
        return reconstruct_from(decode_images(image_bytes, image_size))

    return {RECONSTRUCT: reconstruct, RECONSTRUCT_BYTES: reconstruct_bytes}


def encode_png(image) -> bytes:
    """A uint8 RGB image [H, W, 3] as PNG bytes (for `reconstruct_bytes` requests)."""
    return tf.io.encode_png(tf.convert_to_tensor(np.asarray(image, np.uint8))).numpy()


def example_inputs(name: str, latent_dim: int, resolution: int, prior: str,
                   image_size: int | None = None) -> dict:
    """A one-sample request for signature `name`, as NumPy arrays (used for warm-up).

    The threshold is sent as [batch], not as a scalar: TF Serving's batching
    session refuses inputs without a batch dimension, and a failed warm-up
    request fails the model's load. The image signatures get one blank image
    of the encoder's size (as floats, and as a PNG file).

    Args:
        name: One of `signature_names(image_size is not None)`.
        latent_dim: Size of z.
        resolution: Grid edge R.
        prior: The training prior (z is drawn from it).
        image_size: The encoder's image size; None for a model without one.

    Returns:
        {input key: ndarray}.

    Raises:
        ValueError: if `name` is not a signature (of a model without an encoder,
            for the image signatures).
    """
    z = priors.sample_latent_per_seed(prior, [0], latent_dim).numpy()
    examples = {
        SERVING_DEFAULT: lambda: {"z": z},
        SAMPLE: lambda: {"seed": np.array([0], np.int64)},
        OCCUPANCY: lambda: {"z": z, "threshold": np.array([0.5], np.float32)},
        DISCRIMINATOR_FEATURES: lambda: {"voxels": np.zeros((1,) + (resolution,) * 3, np.float32)},
    }
    if image_size is not None:
        blank = np.broadcast_to(BACKGROUND_COLOR.astype(np.uint8), (image_size, image_size, 3))
        examples[RECONSTRUCT] = lambda: {"images": (blank.astype(np.float32) / 255.0)[None]}
        examples[RECONSTRUCT_BYTES] = lambda: {"image_bytes": np.array([encode_png(blank)], object)}
    if name not in examples:
        raise ValueError(f"Unknown signature {name!r}; expected one of {tuple(examples)}.")
    return examples[name]()


def describe(functions: dict) -> dict:
    """Inputs and outputs of each signature, for the model card.

    Shapes are lists with null for the dynamic batch dimension; an input of
    unknown rank (the occupancy threshold) has shape null.

    Args:
        functions: What `signature_functions` (and `reconstruction_functions`) return.

    Returns:
        {name: {"summary", "inputs": {key: {"dtype", "shape"}}, "outputs": {...}}}.
    """
    def spec(tensor_spec):
        shape = None if tensor_spec.shape.rank is None else tensor_spec.shape.as_list()
        return {"dtype": tensor_spec.dtype.name, "shape": shape}

    description = {}
    for name, function in functions.items():
        concrete = function.get_concrete_function()
        inputs = {tensor_spec.name: spec(tensor_spec) for tensor_spec in function.input_signature}
        outputs = {key: spec(tf.TensorSpec.from_tensor(tensor))
                   for key, tensor in sorted(concrete.structured_outputs.items())}
        description[name] = {"summary": SUMMARIES[name], "inputs": inputs, "outputs": outputs}
    return description

"""Stateless losses of the 3D-GAN and the 3D-VAE-GAN, per example.

The GAN losses come in generator/discriminator pairs (the paper's
non-saturating pair, and WGAN-GP's critic pair with its gradient penalty); the
3D-VAE-GAN adds the KL term and the reconstruction term of its encoder.

They return one loss per example (shape [batch]) rather than a mean, because
under a distribution strategy the mean must be taken over the *global* batch
(`tf.nn.compute_average_loss`): gradients are summed across replicas, so a
per-replica mean would make them N times too large.
"""

from __future__ import annotations

import tensorflow as tf


def _per_example(values: tf.Tensor) -> tf.Tensor:
    """float32 [batch, n]: each example's values (logits, gradients) in one row."""
    return tf.reshape(tf.cast(values, tf.float32), [tf.shape(values)[0], -1])


def _binary_cross_entropy(labels_value: float, logits: tf.Tensor) -> tf.Tensor:
    logits = _per_example(logits)
    labels = tf.fill(tf.shape(logits), labels_value)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=1)


def generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss, -log D(G(z)), per example."""
    return _binary_cross_entropy(1.0, fake_logits)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """-log D(x) - log(1 - D(G(z))), per example (pairs real i with fake i)."""
    return _binary_cross_entropy(1.0, real_logits) + _binary_cross_entropy(0.0, fake_logits)


def wasserstein_critic_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """WGAN's critic loss D(G(z)) - D(x), per example (pairs real i with fake i); no penalty."""
    return tf.reduce_mean(_per_example(fake_logits) - _per_example(real_logits), axis=1)


def wasserstein_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """WGAN's generator loss -D(G(z)), per example."""
    return -tf.reduce_mean(_per_example(fake_logits), axis=1)


def gradient_penalty(input_gradients: tf.Tensor) -> tf.Tensor:
    """WGAN-GP's penalty (||g|| - 1)^2 per example, g the critic's gradient at one input.

    Args:
        input_gradients: float [batch, ...], d D(x_mix) / d x_mix per example.

    Returns:
        float32 [batch].
    """
    flat = _per_example(input_gradients)
    # The epsilon keeps the norm's gradient finite at g = 0.
    norm = tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1) + 1e-12)
    return tf.square(norm - 1.0)


def r1_penalty(input_gradients: tf.Tensor) -> tf.Tensor:
    """R1's ||g||^2 per example (Mescheder et al. 2018), g = d D(x) / d x at a real grid x.

    The caller weighs it by gamma / 2.

    Args:
        input_gradients: float [batch, ...].

    Returns:
        float32 [batch].
    """
    return tf.reduce_sum(tf.square(_per_example(input_gradients)), axis=1)


def rotation_loss(rotation_logits: tf.Tensor, turns: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of D's quarter-turn prediction (SS-GAN's rotation task).

    Args:
        rotation_logits: [batch, 4] logits, one per quarter turn about z.
        turns: int [batch], the true turn of each example.
    """
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(turns, tf.int32), logits=tf.cast(rotation_logits, tf.float32))


def mode_seeking_loss(fakes: tf.Tensor, latents: tf.Tensor, epsilon: float = 1e-5) -> tf.Tensor:
    """Mode-seeking term (Mao et al., "Mode Seeking GANs", CVPR 2019), per pair.

    For each pair of neighbouring samples (0 with 1, 2 with 3, ...), the inverse
    of how much the shapes differ per unit of difference in z:
    1 / (mean |G(z_a) - G(z_b)| / mean |z_a - z_b| + epsilon). A generator that
    ignores z (mode collapse) makes it large. Neighbouring pairs stay on one
    replica whatever the number of replicas, as long as each has an even batch.

    Args:
        fakes: [batch, ...] generated grids, batch even.
        latents: [batch, latent_dim] the z they came from.

    Returns:
        float32 [batch // 2].
    """
    return 1.0 / (generator_diversity(fakes, latents) + epsilon)


def generator_diversity(fakes: tf.Tensor, latents: tf.Tensor) -> tf.Tensor:
    """mean |G(z_a) - G(z_b)| / mean |z_a - z_b| for neighbouring pairs, [batch // 2].

    Near 0 when the generator has collapsed to one output.
    """
    fakes = tf.reshape(tf.cast(fakes, tf.float32), [-1, 2, tf.reduce_prod(tf.shape(fakes)[1:])])
    latents = tf.reshape(tf.cast(latents, tf.float32), [-1, 2, tf.shape(latents)[-1]])
    shape_distance = tf.reduce_mean(tf.abs(fakes[:, 0] - fakes[:, 1]), axis=1)
    latent_distance = tf.reduce_mean(tf.abs(latents[:, 0] - latents[:, 1]), axis=1)
    return shape_distance / latent_distance


def kl_divergence(z_mean: tf.Tensor, z_log_var: tf.Tensor) -> tf.Tensor:
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) per example, in nats.

    The closed form for diagonal Gaussians:
    0.5 * sum_j (exp(log_var_j) + mean_j^2 - 1 - log_var_j).

    Args:
        z_mean: float [batch, latent_dim], the mean of q(z|y).
        z_log_var: float [batch, latent_dim], the log-variance of q(z|y).

    Returns:
        float32 [batch].
    """
    z_mean = tf.cast(z_mean, tf.float32)
    z_log_var = tf.cast(z_log_var, tf.float32)
    return 0.5 * tf.reduce_sum(tf.exp(z_log_var) + tf.square(z_mean) - 1.0 - z_log_var, axis=-1)


def reconstruction_loss(reconstructions: tf.Tensor, voxels: tf.Tensor) -> tf.Tensor:
    """||G(E(y)) - x||_2^2 per example: squared differences summed over the grid.

    The squared norm (a Gaussian log-likelihood up to constants), summed rather
    than averaged over voxels: the paper's weight a2 = 1e-4 then gives the term
    about the size of the GAN loss on 64^3 grids.

    Args:
        reconstructions: float [batch, R, R, R], occupancy probabilities.
        voxels: float [batch, R, R, R], the true occupancies in {0, 1}.

    Returns:
        float32 [batch].
    """
    difference = tf.cast(reconstructions, tf.float32) - tf.cast(voxels, tf.float32)
    difference = tf.reshape(difference, [tf.shape(difference)[0], -1])
    return tf.reduce_sum(tf.square(difference), axis=1)


def reconstruction_cross_entropy(logits: tf.Tensor, voxels: tf.Tensor, positive_weight: float = 1.0) -> tf.Tensor:
    """Weighted binary cross-entropy of G's logits against the grid, summed over voxels, per example.

    sum_v -(w * x_v * log sigmoid(l_v) + (1 - x_v) * log(1 - sigmoid(l_v))), with
    w = positive_weight, computed from the logits l (numerically stable). Its
    gradient with respect to l is p - x for w = 1 (p = sigmoid(l)), where the
    squared error's is 2 (p - x) p (1 - p), which vanishes where the sigmoid
    saturates on the wrong side (an empty grid from G gets no push back).
    Summed over voxels like `reconstruction_loss`, so a2 weighs both per example.

    Args:
        logits: float [batch, R, R, R], G's pre-sigmoid outputs.
        voxels: float [batch, R, R, R], the true occupancies in {0, 1}.
        positive_weight: w > 0, the weight of the occupied voxels (only about
            3-10% of a ModelNet grid is occupied; w > 1 counts missing them more).

    Returns:
        float32 [batch].
    """
    logits = tf.cast(logits, tf.float32)
    logits = tf.reshape(logits, [tf.shape(logits)[0], -1])
    voxels = tf.reshape(tf.cast(voxels, tf.float32), tf.shape(logits))
    per_voxel = tf.nn.weighted_cross_entropy_with_logits(labels=voxels, logits=logits,
                                                         pos_weight=positive_weight)
    return tf.reduce_sum(per_voxel, axis=1)


def voxel_iou(predictions: tf.Tensor, voxels: tf.Tensor, threshold: float = 0.5) -> tf.Tensor:
    """Intersection over union of `predictions > threshold` and `voxels > threshold`, per example.

    Two empty grids count as a perfect match (IoU 1). A metric, not a loss: it has
    no useful gradient.

    Args:
        predictions: float [batch, R, R, R].
        voxels: float [batch, R, R, R].
        threshold: Occupancy threshold of both.

    Returns:
        float32 [batch].
    """
    predicted = tf.reshape(tf.cast(predictions, tf.float32) > threshold, [tf.shape(predictions)[0], -1])
    actual = tf.reshape(tf.cast(voxels, tf.float32) > threshold, [tf.shape(voxels)[0], -1])
    intersection = tf.reduce_sum(tf.cast(predicted & actual, tf.float32), axis=1)
    union = tf.reduce_sum(tf.cast(predicted | actual, tf.float32), axis=1)
    return tf.where(union > 0, intersection / tf.maximum(union, 1.0), tf.ones_like(union))

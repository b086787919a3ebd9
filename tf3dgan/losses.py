"""Stateless GAN losses, per example, in generator/discriminator pairs.

They return one loss per example (shape [batch]) rather than a mean, because
under a distribution strategy the mean must be taken over the *global* batch
(`tf.nn.compute_average_loss`): gradients are summed across replicas, so a
per-replica mean would make them N times too large.
"""

from __future__ import annotations

import tensorflow as tf


def _binary_cross_entropy(labels_value: float, logits: tf.Tensor) -> tf.Tensor:
    logits = tf.reshape(tf.cast(logits, tf.float32), [tf.shape(logits)[0], -1])
    labels = tf.fill(tf.shape(logits), labels_value)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=1)


def generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss, -log D(G(z)), per example."""
    return _binary_cross_entropy(1.0, fake_logits)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """-log D(x) - log(1 - D(G(z))), per example (pairs real i with fake i)."""
    return _binary_cross_entropy(1.0, real_logits) + _binary_cross_entropy(0.0, fake_logits)

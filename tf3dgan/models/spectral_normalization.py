"""Spectral normalization (Miyato et al., ICLR 2018) for the discriminator's convolutions.

A spectrally normalized convolution uses W / sigma(W), where sigma is the largest
singular value of the kernel reshaped to a [k*k*k*in, out] matrix M. This bounds
each layer's Lipschitz constant by 1, the SN-GAN way of keeping D smooth instead
of with BatchNorm or a gate.

sigma is estimated by power iteration with a persistent unit vector u (one per
layer, [out, 1], not trained): each training call advances u by one iteration,
u <- normalize(M^T normalize(M u)), and sigma = ||M u||. Gradients flow through M
only (u is a constant to them), as in the paper. Inference calls read u without
changing it, so features and exported signatures are deterministic.

Unlike `keras.layers.SpectralNormalization`, the kernel variable itself is never
overwritten: the division happens in the forward pass, so the optimizer updates
the raw kernel and a checkpoint holds the raw kernel and u.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf3dgan.models.strided_conv3d import StridedConv3D


def _kernel_matrix(kernel: tf.Tensor) -> tf.Tensor:
    """[k, k, k, in, out] -> float32 [k*k*k*in, out]."""
    return tf.reshape(tf.cast(kernel, tf.float32), [-1, kernel.shape[-1]])


def power_iteration(kernel: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """One power-iteration step for the top right-singular vector of the kernel matrix.

    Args:
        kernel: A convolution kernel [..., out].
        u: float32 [out, 1], the current estimate.

    Returns:
        float32 [out, 1], the next (unit) estimate; no gradient flows through it.
    """
    matrix = tf.stop_gradient(_kernel_matrix(kernel))
    v = tf.math.l2_normalize(tf.matmul(matrix, u), axis=0)
    return tf.math.l2_normalize(tf.matmul(matrix, v, transpose_a=True), axis=0)


def largest_singular_value(kernel: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """sigma = ||M u|| for a unit u: the kernel matrix's largest singular value once u has converged.

    Differentiable with respect to the kernel (u is held constant).
    """
    return tf.norm(tf.matmul(_kernel_matrix(kernel), tf.stop_gradient(u)))


class SpectralNormalization:
    """Mixin for a Keras convolution class: its kernel is divided by its spectral norm.

    Put it first among the bases (`class X(SpectralNormalization, keras.layers.Conv3D)`):
    it adds the vector u at build time, advances it on training calls, and divides
    the kernel inside `convolution_op`, so the convolution's own computation (and
    `StridedConv3D`'s fast formulations) run unchanged.
    """

    def build(self, input_shape):
        super().build(input_shape)
        # "mean" lets each replica assign it under a distribution strategy; every
        # replica computes the same value from the same (mirrored) kernel.
        self.singular_vector = self.add_weight(
            shape=(self.filters, 1), name="singular_vector", trainable=False, autocast=False,
            initializer=_unit_normal, aggregation="mean")

    def call(self, inputs, training=None):
        if training:
            self.singular_vector.assign(power_iteration(self.kernel, self.singular_vector))
        return super().call(inputs)

    def convolution_op(self, inputs, kernel):
        sigma = largest_singular_value(kernel, self.singular_vector)
        normalized = tf.cast(tf.cast(kernel, tf.float32) / sigma, kernel.dtype)
        return super().convolution_op(inputs, normalized)


def _unit_normal(shape, dtype=None):
    """A random unit vector: power iteration's start (seeded like every Keras initializer)."""
    return tf.math.l2_normalize(keras.random.normal(shape, dtype=dtype or "float32"), axis=0)


@keras.saving.register_keras_serializable(package="tf3dgan")
class SpectralStridedConv3D(SpectralNormalization, StridedConv3D):
    """`StridedConv3D` (kernel 4, stride 2, 'same') with a spectrally normalized kernel."""


@keras.saving.register_keras_serializable(package="tf3dgan")
class SpectralConv3D(SpectralNormalization, keras.layers.Conv3D):
    """`keras.layers.Conv3D` with a spectrally normalized kernel (D's output layer)."""

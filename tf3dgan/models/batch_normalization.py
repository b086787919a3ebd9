"""BatchNormalization that trains through TensorFlow's fused kernel when it can.

Keras 3 computes training-mode BatchNorm from a dozen elementwise ops (and, with
`synchronized=True`, sums a tensor of ones the size of the input just to count
its elements), and differentiates each of them. TensorFlow's FusedBatchNormV3
does the moments, the normalization and the backward pass in one kernel each,
which matters on a CPU, where these memory-bound passes over the largest
activations cost a sizeable part of a 3D-GAN step.

The fused path is taken in training mode whenever the batch statistics are those
of this replica's batch alone: one replica in sync, or `synchronized=False`.
Under several replicas with `synchronized=True` the statistics must be summed
across replicas between the moments and the normalization, which one fused
kernel cannot do, so Keras's own computation runs. Both paths compute the same
function, update the moving statistics the same way (Keras's biased batch
variance), and keep the same weights and config, so checkpoints are interchangeable.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_DATA_FORMATS = {4: "NHWC", 5: "NDHWC"}


@keras.saving.register_keras_serializable(package="tf3dgan")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` (channels last) with a fused training path.

    Takes exactly Keras's arguments; see the module docstring for when the
    fused kernel runs. Masks, renormalization and axes other than the last
    always use Keras's computation.
    """

    def _can_fuse(self, inputs, mask) -> bool:
        if mask is not None or self.renorm or len(inputs.shape) not in _DATA_FORMATS:
            return False
        if self.axis not in (-1, len(inputs.shape) - 1):
            return False
        if self.synchronized:
            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                return False
        return True

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._can_fuse(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        # As Keras does: statistics in float32 whatever the compute dtype.
        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, data_format=_DATA_FORMATS[len(x.shape)],
            is_training=True)
        # The kernel returns the Bessel-corrected variance; Keras's moving
        # average uses the biased one.
        count = tf.cast(tf.size(x) // channels, tf.float32)
        variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)

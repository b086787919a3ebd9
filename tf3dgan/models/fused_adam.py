"""Adam whose update of each variable is one fused TensorFlow kernel.

Keras 3's Adam updates a variable with about ten separate element-wise ops
(subtract, multiply, square, sqrt, divide, three assigns), each a full pass over
memory. The 3D-GAN's two networks hold ~23 million weights at the paper's widths,
so on a CPU those passes cost ~56 ms a step; TensorFlow's `ResourceApplyAdam`
does the same update in one pass, ~16 ms (`bench/train_throughput.py`'s
`adam` section measures both).

The arithmetic is Keras 3's, term for term (TensorFlow's training_ops.cc):

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    w -= m * alpha / (sqrt(v) + epsilon)

and the variables (momentum, velocity, iterations) are Keras's own, so
checkpoints written with `keras.optimizers.Adam` restore into it and back.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf3dgan")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (no AMSGrad) with a one-kernel update per variable."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdam has no AMSGrad form; use keras.optimizers.Adam for it.")

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):  # the fused kernel takes dense gradients
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(momentum), v=_handle(velocity),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable. Inside a
    strategy's per-device update, a mirrored variable's handle is that device's copy."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle

"""An exponential moving average of a network's weights (Karras et al. 2018; Yazıcı et al. 2019).

A GAN's generator weights oscillate around a good solution from step to step;
their running average sits nearer the middle and samples from it are cleaner
and vary less with the step a run stops at. The average is a second network of
the same architecture, updated after every generator step:

    average <- d * average + (1 - d) * weights,   d = min(decay, (1 + t) / (10 + t))

where t is the number of updates so far. The warm-up (as in
`tf.train.ExponentialMovingAverage` with `num_updates`) keeps the first
random-weight steps from dominating a short run. BatchNorm's moving statistics
are averaged the same way, so the average network is used in inference mode as
the raw one is.
"""

from __future__ import annotations

import tensorflow as tf


def warmed_up_decay(decay: float, updates) -> tf.Tensor:
    """The decay of update number `updates` (0 for the first): min(decay, (1 + t) / (10 + t))."""
    updates = tf.cast(updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + updates) / (10.0 + updates))


def update_average(average_variables, variables, decay) -> list:
    """Moves each average variable towards its variable: a <- a + (1 - decay) * (v - a).

    Runs in a replica context (inside a distributed step, or outside any
    strategy): every replica holds the same weights, so each updates its own copy
    of the average with the same values, through the strategy (a mirrored
    variable cannot be assigned from one replica alone).

    Args:
        average_variables: The average network's variables.
        variables: The trained network's variables, in the same order.
        decay: A float scalar tensor in [0, 1].

    Returns:
        The update ops, to wait on.
    """
    average_variables, variables = list(average_variables), list(variables)
    if len(average_variables) != len(variables):
        raise ValueError(f"The average has {len(average_variables)} variables but the network has "
                         f"{len(variables)}; average a network of the same architecture.")
    new_values = []
    for average, variable in zip(average_variables, variables):
        current = tf.convert_to_tensor(average)
        rate = tf.cast(1.0 - decay, current.dtype)
        new_values.append(current + rate * (tf.cast(tf.convert_to_tensor(variable), current.dtype) - current))
    # The tf.Variables behind the Keras variables, which tf.distribute can update.
    targets = [getattr(average, "value", average) for average in average_variables]

    def assign(strategy, values):
        return [strategy.extended.update(target, lambda var, new: var.assign(new), args=(value,), group=True)
                for target, value in zip(targets, values)]

    return tf.distribute.get_replica_context().merge_call(assign, args=(new_values,))

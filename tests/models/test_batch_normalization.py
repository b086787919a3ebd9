"""The fused BatchNormalization computes what Keras's does: outputs, gradients, moving statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan.models.batch_normalization import BatchNormalization


def _pair(**kwargs):
    """A Keras layer and ours with the same (non-trivial) weights."""
    shape = kwargs.pop("shape")
    layers = [keras.layers.BatchNormalization(**kwargs), BatchNormalization(**kwargs)]
    rng = np.random.default_rng(0)
    for layer in layers:
        layer.build(shape)
    values = [rng.normal(1.0, 0.3, size=w.shape).astype("float32") for w in layers[0].weights]
    values = [np.abs(v) if "variance" in w.path else v for v, w in zip(values, layers[0].weights)]
    for layer in layers:
        layer.set_weights(values)
    return layers


def _forward_backward(layer, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        # A loss that weighs every output differently, so every gradient term matters.
        weights = tf.reshape(tf.sin(tf.range(tf.size(y), dtype=tf.float32)), tf.shape(y))
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    gradients = tape.gradient(loss, [x] + layer.trainable_weights)
    return y, gradients


@pytest.mark.parametrize("shape", [(4, 6, 6, 6, 5), (3, 7, 7, 4)], ids=["5d", "4d"])
@pytest.mark.parametrize("options", [dict(synchronized=True, momentum=0.9),
                                     dict(synchronized=False, momentum=0.99, epsilon=1e-5),
                                     dict(center=False, scale=False)],
                         ids=["synchronized", "local", "no_affine"])
def test_training_matches_keras(shape, options):
    keras_layer, fused_layer = _pair(shape=shape, **options)
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, size=shape).astype("float32"))
    for _ in range(2):  # two steps: the moving statistics compound
        expected, expected_gradients = _forward_backward(keras_layer, x, training=True)
        actual, actual_gradients = _forward_backward(fused_layer, x, training=True)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
        for want, got in zip(expected_gradients, actual_gradients):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    for want, got in zip(keras_layer.non_trainable_weights, fused_layer.non_trainable_weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6, err_msg=got.path)


def test_the_fused_kernel_is_used_in_training_only():
    layer = BatchNormalization()
    layer.build((2, 4, 4, 4, 3))
    x = tf.ones((2, 4, 4, 4, 3))
    training_graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(x).graph
    inference_graph = tf.function(lambda x: layer(x, training=False)).get_concrete_function(x).graph
    assert any(op.type == "FusedBatchNormV3" for op in training_graph.get_operations())
    assert not any(op.type.startswith("FusedBatchNorm") for op in inference_graph.get_operations())


def test_inference_and_config_match_keras():
    keras_layer, fused_layer = _pair(shape=(2, 3, 3, 3, 4), momentum=0.8)
    x = tf.random.normal((2, 3, 3, 3, 4))
    np.testing.assert_allclose(fused_layer(x, training=False), keras_layer(x, training=False), rtol=1e-6)
    config = fused_layer.get_config()
    assert config == {**keras_layer.get_config(), "name": config["name"]}
    assert isinstance(BatchNormalization.from_config(config), BatchNormalization)


def test_mixed_precision_output_dtype():
    layer = BatchNormalization(dtype="mixed_bfloat16")
    y = layer(tf.random.normal((2, 4, 4, 4, 3)), training=True)
    assert y.dtype == tf.bfloat16

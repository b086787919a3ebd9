"""The GAN losses against NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import losses


def _numpy_diversity(fakes, latents):
    a, b = fakes[0::2].reshape(len(fakes) // 2, -1), fakes[1::2].reshape(len(fakes) // 2, -1)
    za, zb = latents[0::2], latents[1::2]
    return np.abs(a - b).mean(axis=1) / np.abs(za - zb).mean(axis=1)


def test_generator_diversity_and_mode_seeking_loss_match_numpy():
    rng = np.random.default_rng(0)
    fakes = rng.random((6, 4, 4, 4)).astype("float32")
    latents = rng.random((6, 5)).astype("float32")
    expected = _numpy_diversity(fakes, latents)
    np.testing.assert_allclose(losses.generator_diversity(fakes, latents).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.mode_seeking_loss(fakes, latents).numpy(),
                               1.0 / (expected + 1e-5), rtol=1e-5)


def test_mode_seeking_loss_is_largest_for_identical_shapes():
    latents = np.random.default_rng(1).random((4, 3)).astype("float32")
    identical = np.ones((4, 2, 2, 2), "float32")
    assert losses.mode_seeking_loss(identical, latents).numpy() == pytest.approx([1e5, 1e5])


def test_discriminator_and_generator_losses_match_numpy():
    real_logits = np.array([[2.0], [-1.0]], "float32")
    fake_logits = np.array([[0.5], [-3.0]], "float32")
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    np.testing.assert_allclose(losses.discriminator_loss(real_logits, fake_logits).numpy(),
                               softplus(-real_logits[:, 0]) + softplus(fake_logits[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(losses.generator_loss(fake_logits).numpy(),
                               softplus(-fake_logits[:, 0]), rtol=1e-5)


def test_reconstruction_cross_entropy_matches_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=4.0, size=(3, 4, 4, 4)).astype("float32")
    voxels = (rng.random((3, 4, 4, 4)) > 0.8).astype("float32")
    probabilities = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    for positive_weight in (1.0, 5.0):
        per_voxel = -(positive_weight * voxels * np.log(probabilities) + (1 - voxels) * np.log(1 - probabilities))
        np.testing.assert_allclose(
            losses.reconstruction_cross_entropy(logits, voxels, positive_weight),
            per_voxel.reshape(3, -1).sum(axis=1), rtol=1e-5)
    # Stable where the sigmoid saturates: a confidently wrong voxel costs |logit|, not inf.
    saturated = losses.reconstruction_cross_entropy(np.full((1, 2, 2, 2), -200.0, "float32"),
                                                    np.ones((1, 2, 2, 2), "float32")).numpy()
    np.testing.assert_allclose(saturated, [8 * 200.0], rtol=1e-6)


def test_cross_entropy_keeps_its_gradient_where_the_squared_error_loses_it():
    # G outputs an empty grid (logit -10) where the shape is occupied: the squared error's
    # gradient at the logit is ~2 * (p - 1) * p * (1 - p) ~ -9e-5, the cross-entropy's p - 1 ~ -1.
    logits = tf.Variable(np.full((1, 2, 2, 2), -10.0, "float32"))
    voxels = np.ones((1, 2, 2, 2), "float32")
    with tf.GradientTape(persistent=True) as tape:
        squared = losses.reconstruction_loss(tf.sigmoid(logits), voxels)
        cross_entropy = losses.reconstruction_cross_entropy(logits, voxels)
    np.testing.assert_allclose(tape.gradient(cross_entropy, logits).numpy(), -(1 - 1 / (1 + np.exp(10.0))), rtol=1e-5)
    assert np.abs(tape.gradient(squared, logits).numpy()).max() < 1e-3


def test_wasserstein_losses_match_numpy():
    real_logits = np.array([[2.0], [-1.0]], "float32")
    fake_logits = np.array([[0.5], [-3.0]], "float32")
    np.testing.assert_allclose(losses.wasserstein_critic_loss(real_logits, fake_logits).numpy(), [-1.5, -2.0])
    np.testing.assert_allclose(losses.wasserstein_generator_loss(fake_logits).numpy(), [-0.5, 3.0])


def test_gradient_penalty_is_the_squared_distance_of_each_gradient_norm_from_one():
    gradients = np.zeros((3, 2, 2, 2), "float32")
    gradients[0, 0, 0, 0] = 3.0                # norm 3 -> (3 - 1)^2 = 4
    gradients[1] = 0.5 / np.sqrt(8)            # norm 0.5 -> 0.25
    penalty = losses.gradient_penalty(gradients).numpy()  # example 2: norm 0 -> 1
    np.testing.assert_allclose(penalty, [4.0, 0.25, 1.0], rtol=1e-5)

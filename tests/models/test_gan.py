import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan import losses
from tf3dgan.models import GAN3D, Discriminator, Generator
from tf3dgan.models.gan import METRIC_NAMES, ROTATION_METRIC_NAMES, build_gan


def _smoke_gan(**train_overrides):
    keras.utils.set_random_seed(0)
    cfg = config_lib.SMOKE.replace(**train_overrides)
    return build_gan(cfg.model, cfg.train)


def _real_batch(batch_size=4, resolution=16, seed=0):
    return (np.random.default_rng(seed).random((batch_size,) + (resolution,) * 3) > 0.7).astype("float32")


def _snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def _train_one_batch(gan, batch):
    dataset = tf.data.Dataset.from_tensors(batch)
    return gan.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False).history


def test_closed_gate_leaves_discriminator_and_its_optimizer_untouched():
    gan = _smoke_gan()
    gan.d_gate_open.assign(False)
    d_weights = _snapshot(gan.discriminator.trainable_weights)
    d_optimizer_state = _snapshot(gan.d_optimizer.variables)
    g_weights = _snapshot(gan.generator.trainable_weights)

    history = _train_one_batch(gan, _real_batch())

    assert history["d_update_rate"] == [0.0]
    for before, variable in zip(d_weights, gan.discriminator.trainable_weights):
        np.testing.assert_array_equal(before, variable.numpy(), err_msg=variable.path)
    for before, variable in zip(d_optimizer_state, gan.d_optimizer.variables):
        np.testing.assert_array_equal(before, variable.numpy(), err_msg=variable.path)
    assert int(gan.d_optimizer.iterations.numpy()) == 0
    # The generator still learns.
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(g_weights, gan.generator.trainable_weights))
    assert int(gan.g_optimizer.iterations.numpy()) == 1


def test_open_gate_updates_the_discriminator():
    gan = _smoke_gan()
    d_weights = _snapshot(gan.discriminator.trainable_weights)
    history = _train_one_batch(gan, _real_batch())
    assert history["d_update_rate"] == [1.0]
    assert int(gan.d_optimizer.iterations.numpy()) == 1
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(d_weights, gan.discriminator.trainable_weights))


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_gate_follows_the_accuracy_on_the_previous_batch(threshold):
    gan = _smoke_gan(d_accuracy_threshold=threshold)
    history = _train_one_batch(gan, _real_batch())
    accuracy = (history["d_real_accuracy"][0] + history["d_fake_accuracy"][0]) / 2
    assert bool(gan.d_gate_open.numpy()) == (accuracy <= threshold)
    assert int(gan.step_counter.numpy()) == 1


def test_metrics_are_the_documented_ones():
    gan = _smoke_gan()
    history = _train_one_batch(gan, _real_batch())
    assert sorted(history) == sorted(METRIC_NAMES)
    assert all(np.isfinite(v[0]) for v in history.values())


@pytest.mark.parametrize("prior", ["uniform", "normal"])
def test_training_noise_and_sampling_noise_come_from_the_same_prior(prior):
    generator = Generator(resolution=16, latent_dim=64, base_filters=4)
    discriminator = Discriminator(resolution=16, base_filters=4)
    gan = GAN3D(generator, discriminator, prior=prior)
    training_z = gan._replica_latents(0, 256, 256, 0).numpy()
    sampling_z = gan.sample_latent(256, seed=5).numpy()
    for z in (training_z, sampling_z):
        if prior == "uniform":
            assert z.min() >= 0.0 and z.max() <= 1.0
            assert z.mean() == pytest.approx(0.5, abs=0.01)
        else:
            assert z.mean() == pytest.approx(0.0, abs=0.01)
            assert z.std() == pytest.approx(0.33, abs=0.01)


def test_noise_depends_on_the_step_not_on_the_replica_split():
    gan = GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
                Discriminator(resolution=16, base_filters=4))
    whole = gan._replica_latents(0, 8, 8, 0).numpy()
    halves = np.concatenate([gan._replica_latents(0, 4, 8, i).numpy() for i in (0, 1)])
    np.testing.assert_array_equal(whole, halves)
    gan.step_counter.assign(1)
    assert not np.array_equal(whole, gan._replica_latents(0, 8, 8, 0).numpy())


def test_batchnorm_moving_statistics_are_learned_and_used_at_inference():
    gan = _smoke_gan()
    before = _snapshot(gan.generator.non_trainable_weights)
    _train_one_batch(gan, _real_batch())
    after = _snapshot(gan.generator.non_trainable_weights)
    assert all(not np.allclose(b, a) for b, a in zip(before, after))
    z = gan.sample_latent(4, seed=0)
    inference = gan.generator(z, training=False).numpy()
    np.testing.assert_array_equal(inference, gan.generator(z, training=False).numpy())
    # training=False must not touch the statistics.
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(after, gan.generator.non_trainable_weights))


def test_mismatched_resolutions_are_refused():
    with pytest.raises(ValueError, match="generator makes 16\\^3 grids but the discriminator reads 32\\^3"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4), Discriminator(resolution=32, base_filters=4))


def test_unknown_prior_is_refused():
    with pytest.raises(ValueError, match="prior='gaussian' is not supported"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4), prior="gaussian")


def test_get_config_round_trips():
    gan = GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
                Discriminator(resolution=16, base_filters=4), prior="normal", d_accuracy_threshold=0.7, seed=3)
    config = gan.get_config()
    clone = GAN3D.from_config(config)
    assert clone.get_config() == config


def test_g_diversity_is_zero_for_a_generator_that_ignores_z():
    gan = _smoke_gan(mode_seeking_weight=1.0)
    # With its first layer zeroed, G maps every z to the same grid: a collapse.
    first_kernel = gan.generator.conv_layers[0].kernel
    first_kernel.assign(np.zeros(first_kernel.shape, "float32"))
    collapsed = _train_one_batch(gan, _real_batch())
    assert collapsed["g_diversity"] == [0.0]
    assert np.isfinite(collapsed["g_loss"][0])

    healthy = _train_one_batch(_smoke_gan(), _real_batch())
    assert healthy["g_diversity"][0] > 0.01


def _feature_matching_by_hand(gan, z, real):
    """||mean D4(G(z)) - mean D4(x)||^2 / num_features, straight from the definition."""
    _, fake_hidden = gan.discriminator.logits_and_last_hidden(gan.generator(z, training=True), training=True)
    _, real_hidden = gan.discriminator.logits_and_last_hidden(real, training=True)
    difference = tf.reduce_mean(fake_hidden, 0) - tf.reduce_mean(real_hidden, 0)
    return tf.reduce_mean(tf.square(difference))


def test_feature_matching_is_the_distance_of_the_batch_means_and_has_its_gradient():
    gan = _smoke_gan(feature_matching_weight=1.0)
    real = tf.constant(_real_batch(batch_size=6))
    z = gan.sample_latent(6, seed=1)
    step = gan._replica_step(real)
    variables = gan.generator.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        fakes = gan.generator(z, training=True)
        _, fake_hidden = gan.discriminator.logits_and_last_hidden(fakes, training=True)
        share, value = gan._feature_matching_term(fake_hidden, real, step, after=fake_hidden)
        expected = _feature_matching_by_hand(gan, z, real)
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert float(value) > 0
    for got, want in zip(tape.gradient(share, variables), tape.gradient(expected, variables)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-8)


def test_feature_matching_is_logged_and_changes_the_generator_step():
    batch = _real_batch()
    plain, matched = _smoke_gan(), _smoke_gan(feature_matching_weight=10.0)
    plain_history = _train_one_batch(plain, batch)
    matched_history = _train_one_batch(matched, batch)
    assert sorted(matched_history) == sorted(METRIC_NAMES + ("g_feature_matching",))
    assert matched_history["g_feature_matching"][0] > 0
    assert "g_feature_matching" not in plain_history
    assert matched_history["d_loss"] == plain_history["d_loss"]  # same D step
    assert not np.allclose(plain.generator.trainable_weights[0].numpy(),
                           matched.generator.trainable_weights[0].numpy())


def test_negative_feature_matching_weight_is_refused():
    with pytest.raises(ValueError, match=r"feature_matching_weight must be >= 0"):
        config_lib.SMOKE.replace(feature_matching_weight=-1.0)
    with pytest.raises(ValueError, match=r"feature_matching_weight must be >= 0"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4), feature_matching_weight=-0.5)


def _wgan_gp(**overrides):
    return _smoke_gan(adversarial_loss="wgan_gp", discriminator_normalization="none",
                      d_accuracy_threshold=1.0, **overrides)


def test_wgan_gp_critic_loss_is_the_wasserstein_estimate_plus_the_per_example_penalty():
    gan = _wgan_gp(gradient_penalty_weight=10.0)
    real = tf.constant(_real_batch(batch_size=4))
    step = gan._replica_step(real)
    # The step's own draws: z of noise stream 0 and the mixing weights of seed (seed, -1).
    z = gan._replica_noise(0, gan.prior, step)
    weights = tf.random.stateless_uniform([4, 1, 1, 1], tf.constant([gan.seed, -1], tf.int64)).numpy()
    fake = gan.generator(z, training=True).numpy()
    critic = lambda x: gan.discriminator(tf.constant(x), training=True).numpy()[:, 0]  # noqa: E731
    penalties = []
    for index in range(4):  # one example at a time: an independent per-example gradient
        mixed = tf.constant(weights[index] * real.numpy()[index:index + 1]
                            + (1 - weights[index]) * fake[index:index + 1])
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            logit = gan.discriminator(mixed, training=True)
        penalties.append((np.linalg.norm(tape.gradient(logit, mixed).numpy()) - 1.0) ** 2)
    expected = np.mean(critic(fake) - critic(real.numpy()) + 10.0 * np.array(penalties))
    history = _train_one_batch(gan, real.numpy())
    assert history["d_loss"][0] == pytest.approx(float(expected), rel=1e-4)
    assert history["d_update_rate"] == [1.0]


def test_wgan_gp_generator_loss_is_minus_the_critic_on_its_samples():
    gan = _wgan_gp(mode_seeking_weight=0.0)
    real = tf.constant(_real_batch(batch_size=4))
    step = gan._replica_step(real)
    z = gan._replica_noise(1, gan.prior, step)
    adversarial = gan._adversarial_generator_loss(z, step, real)
    expected = -gan.discriminator(gan.generator(z, training=True), training=True).numpy().mean()
    assert float(adversarial.gan_loss) == pytest.approx(float(expected), rel=1e-5)


def test_wgan_gp_is_refused_with_batchnorm_or_the_gate():
    with pytest.raises(ValueError, match=r"needs a discriminator without BatchNorm"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4), adversarial_loss="wgan_gp", d_accuracy_threshold=1.0)
    with pytest.raises(ValueError, match=r"no accuracy for the gate; pass d_accuracy_threshold=1.0"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4, normalization="none"), adversarial_loss="wgan_gp")
    with pytest.raises(ValueError, match=r"adversarial_loss='hinge' is not supported"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4), adversarial_loss="hinge")
    with pytest.raises(ValueError, match=r"BatchNorm's batch statistics would mix; pass --discriminator_normalization none"):
        config_lib.SMOKE.replace(adversarial_loss="wgan_gp", d_accuracy_threshold=1.0)
    with pytest.raises(ValueError, match=r"no accuracy for the gate .* pass --d_accuracy_threshold 1.0"):
        config_lib.SMOKE.replace(adversarial_loss="wgan_gp", discriminator_normalization="none")
    with pytest.raises(ValueError, match=r"available for model='gan' only"):
        config_lib.SMOKE_VAE.replace(adversarial_loss="wgan_gp", discriminator_normalization="none",
                                     d_accuracy_threshold=1.0)


def _rotation_gan(**overrides):
    return _smoke_gan(rotation_head=True, **overrides)


def _cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return log_sum - logits[np.arange(len(labels)), labels]


def test_rotation_task_adds_beta_times_the_turn_cross_entropy_on_turned_real_grids_to_d_loss():
    gan = _rotation_gan(rotation_weight=2.0)
    real = _real_batch(batch_size=4)
    step = gan._replica_step(tf.constant(real))
    fake = gan.generator(gan._replica_noise(0, gan.prior, step), training=True)
    real_logits = gan.discriminator(tf.constant(real), training=True)
    fake_logits = gan.discriminator(fake, training=True)
    adversarial = np.mean(losses.discriminator_loss(real_logits, fake_logits).numpy())
    turns = np.arange(4) % 4  # example i is turned i mod 4 times
    turned = np.stack([np.rot90(grid, turn, axes=(0, 1)) for grid, turn in zip(real, turns)])
    _, rotation_logits = gan.discriminator.logits_and_rotation_logits(tf.constant(turned), training=True)
    expected = adversarial + 2.0 * np.mean(_cross_entropy(rotation_logits.numpy(), turns))
    history = _train_one_batch(gan, real)
    assert history["d_loss"][0] == pytest.approx(expected, rel=1e-4)
    assert sorted(history) == sorted(METRIC_NAMES + ROTATION_METRIC_NAMES)
    for name in ROTATION_METRIC_NAMES:
        assert 0.0 <= history[name][0] <= 1.0


def test_rotation_task_adds_alpha_times_the_turn_cross_entropy_on_turned_samples_to_g_loss():
    gan = _rotation_gan(mode_seeking_weight=0.0, generator_rotation_weight=0.5)
    real = tf.constant(_real_batch(batch_size=4))
    step = gan._replica_step(real)
    z = gan._replica_noise(1, gan.prior, step)
    variables = gan.generator.trainable_weights
    with tf.GradientTape() as tape:
        adversarial = gan._adversarial_generator_loss(z, step, real)
        rotation_term = adversarial.total_loss - adversarial.gan_loss
    fakes = adversarial.fakes.numpy()
    turned = np.stack([np.rot90(grid, turn, axes=(0, 1)) for grid, turn in zip(fakes, range(4))])
    _, rotation_logits = gan.discriminator.logits_and_rotation_logits(tf.constant(turned), training=True)
    expected = 0.5 * np.mean(_cross_entropy(rotation_logits.numpy(), np.arange(4)))
    assert float(rotation_term) == pytest.approx(expected, rel=1e-4)
    # The term reaches G through its turned samples.
    assert any(np.abs(g.numpy()).max() > 0 for g in tape.gradient(rotation_term, variables))


def test_rotation_task_at_zero_weight_trains_the_networks_as_without_it():
    batch = _real_batch()
    plain = _smoke_gan()
    with_head = _rotation_gan(rotation_weight=0.0, generator_rotation_weight=0.0)
    _train_one_batch(plain, batch)
    _train_one_batch(with_head, batch)
    for network in ("generator", "discriminator"):
        trained = {w.path: w.numpy() for w in getattr(with_head, network).trainable_weights}
        for weight in getattr(plain, network).trainable_weights:
            np.testing.assert_allclose(trained.pop(weight.path), weight.numpy(), rtol=1e-5, atol=1e-7,
                                       err_msg=weight.path)
        # What is left is the head's own: D's rotation classifier.
        assert all("rotation" in path for path in trained) and (network == "generator") == (not trained)


def test_rotation_weights_are_checked():
    with pytest.raises(ValueError, match=r"rotation_weight must be >= 0"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4, rotation_head=True), rotation_weight=-1.0)
    with pytest.raises(ValueError, match=r"generator_rotation_weight=0.5 weighs the rotation task, which "
                                         r"this model does not have; pass --rotation_head true"):
        config_lib.SMOKE.replace(generator_rotation_weight=0.5)
    with pytest.raises(ValueError, match=r"rotation_head is available for model='gan' only"):
        config_lib.SMOKE_VAE.replace(rotation_head=True)
    with pytest.raises(ValueError, match=r"generator_rotation_weight must be >= 0"):
        config_lib.SMOKE.replace(rotation_head=True, generator_rotation_weight=-0.2)

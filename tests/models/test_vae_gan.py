"""The 3D-VAE-GAN: its loss terms against NumPy, the reparameterization, and one training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan import losses
from tf3dgan.models import VAEGAN3D, Discriminator, Generator, ImageEncoder
from tf3dgan.models.gan import ReplicaStep
from tf3dgan.models.vae_gan import VAE_METRIC_NAMES, build_vae_gan


def _smoke_vae_gan(**overrides):
    keras.utils.set_random_seed(0)
    cfg = config_lib.SMOKE_VAE.replace(**overrides)
    return build_vae_gan(cfg.model, cfg.train)


def _pair_batch(batch_size=4, image_size=32, resolution=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, image_size, image_size, 3)).astype("float32")
    voxels = (rng.random((batch_size,) + (resolution,) * 3) > 0.7).astype("float32")
    return images, voxels


def _snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def _train_one_batch(model, batch):
    dataset = tf.data.Dataset.from_tensors(batch)
    return model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False).history


def _small_networks(latent_dim=8):
    return (Generator(resolution=16, latent_dim=latent_dim, base_filters=4),
            Discriminator(resolution=16, base_filters=4),
            ImageEncoder(latent_dim=latent_dim, image_size=32, base_filters=4))


def test_kl_divergence_matches_numpy():
    rng = np.random.default_rng(0)
    z_mean = rng.normal(size=(5, 7)).astype("float32")
    z_log_var = rng.normal(scale=1.5, size=(5, 7)).astype("float32")
    # KL(N(m, s^2) || N(0, 1)) per dimension: log(1 / s) + (s^2 + m^2) / 2 - 1/2.
    stddev = np.exp(0.5 * z_log_var.astype(np.float64))
    expected = np.sum(-np.log(stddev) + (stddev**2 + z_mean.astype(np.float64) ** 2) / 2 - 0.5, axis=1)
    kl = losses.kl_divergence(z_mean, z_log_var).numpy()
    assert kl.shape == (5,)
    np.testing.assert_allclose(kl, expected, rtol=1e-5)
    # Zero exactly when q(z|y) is N(0, I).
    np.testing.assert_allclose(losses.kl_divergence(np.zeros((2, 7)), np.zeros((2, 7))), [0.0, 0.0])


def test_reconstruction_loss_and_iou_match_numpy():
    rng = np.random.default_rng(1)
    predictions = rng.random((3, 4, 4, 4)).astype("float32")
    voxels = (rng.random((3, 4, 4, 4)) > 0.5).astype("float32")
    np.testing.assert_allclose(losses.reconstruction_loss(predictions, voxels),
                               ((predictions - voxels) ** 2).reshape(3, -1).sum(axis=1), rtol=1e-5)
    predicted, actual = predictions > 0.5, voxels > 0.5
    expected = (predicted & actual).reshape(3, -1).sum(1) / (predicted | actual).reshape(3, -1).sum(1)
    np.testing.assert_allclose(losses.voxel_iou(predictions, voxels), expected, rtol=1e-6)
    empty = np.zeros((1, 4, 4, 4), "float32")
    assert losses.voxel_iou(empty, empty).numpy().tolist() == [1.0]


def test_reparameterization_has_the_posteriors_mean_and_variance():
    model = VAEGAN3D(*_small_networks(latent_dim=4))
    samples = 20000
    z_mean = np.tile(np.array([[0.0, 1.5, -2.0, 0.3]], "float32"), (samples, 1))
    z_log_var = np.tile(np.array([[0.0, -1.0, 1.0, -3.0]], "float32"), (samples, 1))
    step = ReplicaStep(None, 0, samples, samples)
    z = model._sample_posterior(z_mean, z_log_var, step).numpy()
    np.testing.assert_allclose(z.mean(axis=0), z_mean[0], atol=0.04)
    np.testing.assert_allclose(z.var(axis=0), np.exp(z_log_var[0]), rtol=0.04)
    # Drawn per (seed, step) for the global batch: two replicas' slices make the whole.
    halves = [model._sample_posterior(z_mean[:samples // 2], z_log_var[:samples // 2],
                                      ReplicaStep(None, i, samples // 2, samples)).numpy() for i in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), z)
    # A new step draws new noise, independent of the GAN's z of the same step.
    model.step_counter.assign(1)
    assert not np.array_equal(model._sample_posterior(z_mean, z_log_var, step).numpy(), z)
    gan_z = model._replica_noise(1, model.prior, step).numpy()
    assert abs(np.corrcoef(gan_z[:, 0], model._sample_posterior(z_mean, z_log_var, step)[:, 0])[0, 1]) < 0.05


def test_one_step_trains_encoder_generator_and_discriminator():
    model = _smoke_vae_gan()
    before = {name: _snapshot(getattr(model, name).trainable_weights)
              for name in ("encoder", "generator", "discriminator")}
    history = _train_one_batch(model, _pair_batch())
    assert sorted(history) == sorted(VAE_METRIC_NAMES)
    assert all(np.isfinite(values[0]) for values in history.values())
    assert history["d_update_rate"] == [1.0]
    assert history["kl_loss"][0] > 0 and history["reconstruction_loss"][0] > 0
    assert 0.0 <= history["reconstruction_iou"][0] <= 1.0
    for name, weights in before.items():
        assert all(_changed(weights, getattr(model, name).trainable_weights)), name
    for optimizer in (model.g_optimizer, model.d_optimizer, model.e_optimizer):
        assert int(optimizer.iterations.numpy()) == 1
    assert int(model.step_counter.numpy()) == 1


def test_closed_gate_leaves_discriminator_unchanged_while_encoder_and_generator_learn():
    model = _smoke_vae_gan()
    model.d_gate_open.assign(False)
    d_state = _snapshot(model.discriminator.trainable_weights + model.d_optimizer.variables)
    e_weights = _snapshot(model.encoder.trainable_weights)
    g_weights = _snapshot(model.generator.trainable_weights)
    history = _train_one_batch(model, _pair_batch())
    assert history["d_update_rate"] == [0.0]
    for before, variable in zip(d_state, model.discriminator.trainable_weights + model.d_optimizer.variables):
        np.testing.assert_array_equal(before, variable.numpy(), err_msg=variable.path)
    assert any(_changed(e_weights, model.encoder.trainable_weights))
    assert any(_changed(g_weights, model.generator.trainable_weights))


def test_the_gan_term_does_not_reach_the_encoder():
    # With a1 = a2 = 0 the encoder's loss is 0: its weights must not move.
    model = _smoke_vae_gan(kl_weight=0.0, reconstruction_weight=0.0)
    e_weights = _snapshot(model.encoder.trainable_weights)
    _train_one_batch(model, _pair_batch())
    assert not any(_changed(e_weights, model.encoder.trainable_weights))


def test_reconstruct_is_the_generator_at_the_posterior_mean():
    model = _smoke_vae_gan()
    images, _ = _pair_batch(batch_size=3)
    voxels = model.reconstruct(images)
    assert voxels.shape == (3, 16, 16, 16) and voxels.dtype == tf.float32
    z_mean, z_log_var = model.encode(images)
    assert z_mean.shape == (3, 8) and z_log_var.shape == (3, 8)
    np.testing.assert_allclose(voxels, model.generator(z_mean), rtol=1e-6)
    assert (model.image_size, model.latent_dim, model.resolution) == (32, 8, 16)


def test_samples_come_from_the_standard_normal_prior():
    model = VAEGAN3D(*_small_networks(latent_dim=64))
    for z in (model._replica_latents(1, 256, 256, 0).numpy(), model.sample_latent(256, seed=5).numpy()):
        assert z.mean() == pytest.approx(0.0, abs=0.01)
        assert z.std() == pytest.approx(1.0, abs=0.01)


def test_another_prior_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"VAEGAN3D needs prior='standard_normal', received "
                                         r"prior='uniform'.*Pass prior='standard_normal'"):
        VAEGAN3D(*_small_networks(), prior="uniform")
    with pytest.raises(ValueError, match=r"model='vae_gan' needs prior='standard_normal'.*"
                                         r"--prior standard_normal"):
        config_lib.SMOKE.replace(model="vae_gan")


def test_encoder_and_generator_must_share_latent_dim():
    generator, discriminator, _ = _small_networks(latent_dim=8)
    with pytest.raises(ValueError, match="encoder outputs z of size 6 but the generator reads z of size 8"):
        VAEGAN3D(generator, discriminator, ImageEncoder(latent_dim=6, image_size=32, base_filters=4))


def test_a_batch_without_images_is_refused():
    model = _smoke_vae_gan()
    _, voxels = _pair_batch()
    with pytest.raises(ValueError, match=r"VAEGAN3D trains on \(images, voxels\) batches"):
        _train_one_batch(model, voxels)


def test_get_config_round_trips():
    model = VAEGAN3D(*_small_networks(), d_accuracy_threshold=0.7, kl_weight=2.0,
                     reconstruction_weight=0.5, seed=3)
    config = model.get_config()
    assert (config["kl_weight"], config["reconstruction_weight"], config["prior"]) == (2.0, 0.5, "standard_normal")
    clone = VAEGAN3D.from_config(config)
    assert isinstance(clone.encoder, ImageEncoder)
    assert clone.get_config() == config


def _saved_gan(tmp_path, **overrides):
    """A 3D-GAN workdir: config.json and one checkpoint of a (random) smoke GAN."""
    from tf3dgan import checkpointing
    from tf3dgan.models.gan import build_gan

    cfg = config_lib.SMOKE.replace(**overrides)
    keras.utils.set_random_seed(1)
    gan = build_gan(cfg.model, cfg.train)
    checkpointing.write_config(tmp_path, cfg)
    checkpointing.make_checkpoint(gan).write(str(tmp_path / "checkpoints" / "ckpt-10"))
    (tmp_path / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-10"\n')
    return gan


def test_init_from_loads_a_trained_gans_generator_and_discriminator(tmp_path):
    from tf3dgan import checkpointing

    gan = _saved_gan(tmp_path)
    model = _smoke_vae_gan()
    encoder_before = _snapshot(model.encoder.weights)
    loaded = checkpointing.load_networks(model, str(tmp_path), config_lib.SMOKE_VAE.model)
    assert loaded.endswith("ckpt-10")
    for source, target in [(gan.generator, model.generator), (gan.discriminator, model.discriminator)]:
        for a, b in zip(source.weights, target.weights):  # BatchNorm statistics included
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert not any(_changed(encoder_before, model.encoder.weights))
    assert int(model.step_counter.numpy()) == 0 and int(model.g_optimizer.iterations.numpy()) == 0


def test_init_from_refuses_another_architecture(tmp_path):
    from tf3dgan import checkpointing

    _saved_gan(tmp_path, base_filters=8)
    model = _smoke_vae_gan()
    with pytest.raises(checkpointing.CheckpointMismatchError,
                       match=r"holds networks of another architecture: base_filters=8 \(this run: 4\)"):
        checkpointing.load_networks(model, str(tmp_path), config_lib.SMOKE_VAE.model)
    # Without the workdir's config, the checkpoint's shapes are compared.
    with pytest.raises(checkpointing.CheckpointMismatchError,
                       match=r"generator/deconv1/kernel has shape \[1, 1, 1, 64, 8\] there, "
                             r"\[1, 1, 1, 32, 8\] here"):
        checkpointing.load_networks(model, str(tmp_path / "checkpoints" / "ckpt-10"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder without checkpoints"):
        checkpointing.load_networks(model, str(empty))


def test_generator_logits_are_the_generators_output_before_its_sigmoid():
    model = _smoke_vae_gan()
    z = np.random.default_rng(3).normal(size=(2, 8)).astype("float32")
    logits = model.generator.logits(z, training=False)
    assert logits.shape == (2, 16, 16, 16)
    np.testing.assert_allclose(tf.sigmoid(logits), model.generator(z, training=False), rtol=1e-5, atol=1e-7)


def test_cross_entropy_reconstruction_is_the_logged_loss():
    # With a1 = a2 = 0 nothing moves E or G's reconstruction path, so the logged term
    # equals the loss recomputed at the same z' (the step's epsilon) after the step.
    model = _smoke_vae_gan(reconstruction_loss="cross_entropy", reconstruction_positive_weight=4.0)
    assert (model.reconstruction_loss, model.reconstruction_positive_weight) == ("cross_entropy", 4.0)
    images, voxels = _pair_batch()
    step = ReplicaStep(None, 0, 4, 4)
    z_mean, z_log_var = model.encoder(images, training=True)
    z = model._sample_posterior(z_mean, z_log_var, step)
    expected_logits = model.generator.logits(z, training=True)
    expected = losses.reconstruction_cross_entropy(expected_logits, voxels, 4.0).numpy().mean()
    history = _train_one_batch(model, (images, voxels))
    np.testing.assert_allclose(history["reconstruction_loss"][0], expected, rtol=1e-4)


def test_kl_warmup_ramps_the_kl_weight():
    model = VAEGAN3D(*_small_networks(), kl_weight=2.0, kl_warmup_steps=4)
    assert [float(model.kl_weight_at(step)) for step in (0, 1, 3, 10)] == [0.5, 1.0, 2.0, 2.0]
    assert float(VAEGAN3D(*_small_networks(), kl_weight=2.0).kl_weight_at(0)) == 2.0


@pytest.mark.parametrize("overrides, message", [
    ({"reconstruction_loss": "l1"}, r"reconstruction_loss must be one of squared, cross_entropy, received "
                                    r"reconstruction_loss='l1'"),
    ({"reconstruction_positive_weight": 0.0}, r"reconstruction_positive_weight must be > 0"),
    ({"kl_warmup_steps": -2}, r"kl_warmup_steps must be an integer >= 0"),
])
def test_bad_reconstruction_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        VAEGAN3D(*_small_networks(), **overrides)


def test_reconstruction_settings_round_trip_through_get_config():
    model = VAEGAN3D(*_small_networks(), reconstruction_loss="cross_entropy",
                     reconstruction_positive_weight=3.0, kl_warmup_steps=50)
    config = model.get_config()
    assert (config["reconstruction_loss"], config["reconstruction_positive_weight"],
            config["kl_warmup_steps"]) == ("cross_entropy", 3.0, 50)
    assert VAEGAN3D.from_config(config).get_config() == config

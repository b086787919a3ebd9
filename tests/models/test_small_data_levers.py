"""The 3D-GAN's small-data levers: G's weight average, R1 and differentiable augmentation."""

import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan import export
from tf3dgan.models import GAN3D, Discriminator, Generator
from tf3dgan.models import differentiable_augmentation as augmentation
from tf3dgan.models import weight_average

from test_gan import _real_batch, _smoke_gan  # the 3D-GAN tests' smoke model and batch

OPERATIONS = ("translate", "flip", "cutout")


def _fit(gan, batch, steps):
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False).history


# --- weight average ------------------------------------------------------------------------


def test_the_average_is_the_hand_computed_ema_of_every_generator_weight():
    gan = _smoke_gan(ema_decay=0.5)
    batch = _real_batch()
    snapshots = [[np.array(v.numpy()) for v in gan.generator.weights]]
    for _ in range(3):  # one step at a time, to see G's weights after each
        _fit(gan, batch, 1)
        snapshots.append([np.array(v.numpy()) for v in gan.generator.weights])
    expected = [np.array(w, np.float64) for w in snapshots[0]]
    for step in range(3):
        decay = min(0.5, (1 + step) / (10 + step))  # the warm-up: 0.1, 0.1818, 0.25
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, snapshots[step + 1])]
    assert len(gan.generator_ema.weights) == len(gan.generator.weights)
    for value, variable in zip(expected, gan.generator_ema.weights):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-6, err_msg=variable.path)
    # The average moved away from G (it lags behind it), and was never trained itself.
    assert any(not np.allclose(a.numpy(), g.numpy()) for a, g in zip(gan.generator_ema.weights, gan.generator.weights))
    assert not gan.generator_ema.trainable_weights


def test_warmed_up_decay_follows_its_formula():
    assert [float(weight_average.warmed_up_decay(0.999, t)) for t in (0, 10, 10_000)] == pytest.approx(
        [0.1, 11 / 20, 0.999])


def test_samples_and_the_export_use_the_average_and_the_raw_generator_stays(tmp_path):
    gan = _smoke_gan(ema_decay=0.9)
    _fit(gan, _real_batch(), 2)
    assert gan.sampling_generator is gan.generator_ema
    z = gan.sample_latent(3, seed=1)
    card = export.model_card(config_lib.SMOKE.replace(ema_decay=0.9), steps_trained=2, data_description="test")
    version = export.export_model(gan, tmp_path, 2, model_card=card)
    served = tf.saved_model.load(str(version)).signatures["serving_default"](z=z)["voxels"].numpy()
    np.testing.assert_allclose(served, gan.generator_ema(z, training=False), rtol=1e-5, atol=1e-6)
    assert not np.allclose(served, gan.generator(z, training=False), atol=1e-4)
    without = _smoke_gan()
    assert without.generator_ema is None and without.sampling_generator is without.generator


def test_ema_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\).*0.999 is a common choice"):
        config_lib.SMOKE.replace(ema_decay=1.0)
    with pytest.raises(ValueError, match=r"ema_decay=0.9 is available for model='gan' only .*pass --ema_decay 0.0"):
        config_lib.SMOKE_VAE.replace(ema_decay=0.9)


# --- R1 --------------------------------------------------------------------------------------


def test_r1_adds_gamma_over_two_times_the_squared_input_gradient_norm_to_d_loss():
    # Without BatchNorm each logit depends on its own grid: the penalty is per example.
    common = dict(discriminator_normalization="none", d_accuracy_threshold=1.0, mode_seeking_weight=0.0)
    real = _real_batch()
    plain = _smoke_gan(**common)
    penalized = _smoke_gan(r1_weight=4.0, **common)
    expected_penalty = []
    for index in range(len(real)):  # each grid's own gradient, computed one at a time
        grid = tf.constant(real[index:index + 1])
        with tf.GradientTape() as tape:
            tape.watch(grid)
            logit = penalized.discriminator(grid, training=True)
        expected_penalty.append(np.sum(np.square(tape.gradient(logit, grid).numpy())))
    plain_loss = _fit(plain, real, 1)["d_loss"][0]
    penalized_loss = _fit(penalized, real, 1)["d_loss"][0]
    assert penalized_loss - plain_loss == pytest.approx(0.5 * 4.0 * np.mean(expected_penalty), rel=1e-3)
    assert np.mean(expected_penalty) > 0


def test_negative_r1_weight_is_refused():
    with pytest.raises(ValueError, match=r"r1_weight must be >= 0"):
        config_lib.SMOKE.replace(r1_weight=-1.0)
    with pytest.raises(ValueError, match=r"r1_weight must be >= 0"):
        GAN3D(Generator(resolution=16, latent_dim=8, base_filters=4),
              Discriminator(resolution=16, base_filters=4), r1_weight=-1.0)


# --- differentiable augmentation -------------------------------------------------------------


def _augment(grids, operations=OPERATIONS, seed=(3, 5), start=0, global_batch=None):
    grids = tf.constant(grids)
    return augmentation.augment(grids, operations, tf.constant(seed, tf.int64), start,
                                global_batch or int(grids.shape[0])).numpy()


def _numpy_translate(grid, shift):
    moved = np.zeros_like(grid)
    r = grid.shape[0]
    src = [slice(max(0, -s), r - max(0, s)) for s in shift]
    dst = [slice(max(0, s), r - max(0, -s)) for s in shift]
    moved[tuple(dst)] = grid[tuple(src)]
    return moved


def test_translation_moves_each_grid_by_an_integer_shift_with_zeros_shifted_in():
    grids = _real_batch(batch_size=6, seed=1)
    shifted = _augment(grids, ("translate",))
    for grid, result in zip(grids, shifted):
        limit = 16 // 8
        candidates = [(a, b, c) for a in range(-limit, limit + 1) for b in range(-limit, limit + 1)
                      for c in range(-limit, limit + 1)]
        assert any(np.array_equal(result, _numpy_translate(grid, shift)) for shift in candidates)


def test_flips_mirror_x_and_y_but_never_the_up_axis():
    grid = np.zeros((1, 16, 16, 16), np.float32)
    grid[0, 1, 2, 3] = 1.0
    seen = set()
    for seed in range(40):
        result = _augment(grid, ("flip",), seed=(seed, 0))
        (x, y, z), = np.argwhere(result[0] > 0)
        assert z == 3 and x in (1, 14) and y in (2, 13)
        seen.add((x, y))
    assert seen == {(1, 2), (14, 2), (1, 13), (14, 13)}


def test_cutout_zeroes_one_cube_of_a_quarter_edge():
    full = np.ones((8, 16, 16, 16), np.float32)
    for result in _augment(full, ("cutout",)):
        removed = np.argwhere(result == 0)
        assert len(removed) == 4 ** 3
        assert (removed.max(axis=0) - removed.min(axis=0) == 3).all()


def test_reals_and_fakes_are_augmented_from_one_distribution():
    # The draws do not depend on the grids: one seed applies one transform to any grids,
    # and every example's transform is drawn alike (per-example statistics match).
    grids = _real_batch(batch_size=4, seed=2)
    others = _real_batch(batch_size=4, seed=3)
    marker = np.zeros((4000, 16, 16, 16), np.float32)
    marker[:, 7, 7, 7] = 1.0
    moved = _augment(marker, ("translate",), seed=(1, 1))
    positions = np.stack([np.argwhere(m > 0)[0] for m in moved])
    for axis in range(3):  # uniform over -2..2 around 7
        counts = np.bincount(positions[:, axis] - 5, minlength=5)
        assert counts.min() > 650 and counts.max() < 950, counts
    # Same seed, same transform on other grids: e.g. the cutout hole is at the same place.
    hole_a = _augment(np.ones_like(grids), ("cutout",), seed=(9, 9)) == 0
    hole_b = _augment(np.ones_like(others), ("cutout",), seed=(9, 9)) == 0
    np.testing.assert_array_equal(hole_a, hole_b)


def test_a_replica_gets_its_slice_of_the_global_batch_draws():
    grids = _real_batch(batch_size=8, seed=4)
    whole = _augment(grids)
    halves = np.concatenate([_augment(grids[:4], start=0, global_batch=8),
                             _augment(grids[4:], start=4, global_batch=8)])
    np.testing.assert_array_equal(halves, whole)


def test_augmentation_is_differentiable_in_the_grids():
    grids = tf.constant(np.random.default_rng(5).random((4, 16, 16, 16)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(grids)
        augmented = augmentation.augment(grids, OPERATIONS, tf.constant([2, 2], tf.int64), 0, 4)
        total = tf.reduce_sum(augmented * augmented)
    gradient = tape.gradient(total, grids).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0
    # d sum(a^2) / dx = 2 x where x lands inside the output, 0 where it was cut or shifted out.
    landed = np.isclose(gradient, 2 * grids.numpy())
    assert landed.mean() > 0.5 and np.all(landed | (gradient == 0))


def test_unknown_augmentations_are_refused():
    with pytest.raises(ValueError, match=r"names unknown operations \['rotate'\].*translate, flip, cutout"):
        config_lib.SMOKE.replace(diff_augment="translate,rotate")


def test_augmentation_trains_d_on_augmented_grids_and_never_enters_sampling(tmp_path):
    gan = _smoke_gan(diff_augment="translate,flip,cutout")
    plain = _smoke_gan()
    real = _real_batch()
    augmented_history = _fit(gan, real, 1)
    plain_history = _fit(plain, real, 1)
    assert augmented_history["d_loss"] != plain_history["d_loss"]  # D saw other grids
    z = gan.sample_latent(2, seed=0)
    # Sampling is G alone, in inference mode; so is every exported signature.
    card = export.model_card(config_lib.SMOKE.replace(diff_augment="translate"), steps_trained=1,
                             data_description="test")
    loaded = tf.saved_model.load(str(export.export_model(gan, tmp_path, 1, model_card=card)))
    served = loaded.signatures["serving_default"](z=z)["voxels"].numpy()
    np.testing.assert_allclose(served, gan.generator(z, training=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served, loaded.signatures["serving_default"](z=z)["voxels"].numpy())


def test_lazy_r1_weighs_the_penalty_by_its_interval_on_its_steps_only():
    common = dict(discriminator_normalization="none", d_accuracy_threshold=1.0, mode_seeking_weight=0.0)
    real = _real_batch()
    every, lazy = _smoke_gan(r1_weight=2.0, **common), _smoke_gan(r1_weight=2.0, r1_interval=3, **common)
    plain = _smoke_gan(**common)
    # Same weights and noise: the first step (step 0) penalizes, three times as much.
    first = [_fit(model, real, 1)["d_loss"][0] for model in (plain, every, lazy)]
    assert first[2] - first[0] == pytest.approx(3 * (first[1] - first[0]), rel=1e-3)
    assert first[1] > first[0]
    # Step 1 is not a multiple of 3: D's loss is the plain one for the same weights.
    plain.set_weights([w.numpy() for w in lazy.weights if "generator_ema" not in w.path])
    assert _fit(lazy, real, 1)["d_loss"][0] == pytest.approx(_fit(plain, real, 1)["d_loss"][0], rel=1e-5)
    with pytest.raises(ValueError, match=r"r1_interval must be >= 1"):
        config_lib.SMOKE.replace(r1_interval=0)

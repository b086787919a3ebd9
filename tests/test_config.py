import dataclasses
import json

import pytest

from tf3dgan import config as config_lib


@pytest.mark.parametrize("name", sorted(config_lib.PRESETS))
def test_presets_round_trip_through_json(name):
    preset = config_lib.get_preset(name)
    assert config_lib.ExperimentConfig.from_dict(json.loads(preset.to_json())) == preset


def test_paper64_is_the_papers_recipe():
    paper = config_lib.get_preset("paper64")
    assert (paper.model.resolution, paper.model.latent_dim, paper.model.base_filters) == (64, 200, 64)
    assert paper.model.prior == "uniform"
    train = paper.train
    assert (train.batch_size, train.generator_learning_rate, train.discriminator_learning_rate,
            train.beta_1, train.d_accuracy_threshold) == (100, 0.0025, 1e-5, 0.5, 0.8)


def test_recognition_preset_is_cpu32_longer_ungated_on_mirrored_shapes_with_a_holdout():
    preset = config_lib.get_preset("cpu32_recognition")
    assert preset.model == config_lib.CPU32.model
    assert (preset.data.augment_flip, preset.data.augment_rotate) == (True, False)
    assert preset.data.holdout_fraction == 0.2  # --select_checkpoint chooses on unseen shapes
    train = preset.train
    assert (train.train_steps, train.steps_per_epoch) == (6000, 500)
    assert train.keep_checkpoints >= train.train_steps // train.steps_per_epoch  # all kept
    assert train.d_accuracy_threshold == 1.0  # the gate is off
    assert dataclasses.replace(train, train_steps=1200, steps_per_epoch=100, keep_checkpoints=3,
                               d_accuracy_threshold=config_lib.CPU32.train.d_accuracy_threshold
                               ) == config_lib.CPU32.train


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config_lib.CPU32.train.batch_size = 3


def test_flat_overrides_reach_their_section():
    changed = config_lib.CPU32.replace(resolution=64, batch_size=8, data="npz")
    assert (changed.model.resolution, changed.train.batch_size, changed.data.data) == (64, 8, "npz")
    assert changed.model.base_filters == config_lib.CPU32.model.base_filters


@pytest.mark.parametrize("overrides, message", [
    ({"resolution": 48}, r"resolution=48 is not supported. Expected one of 16, 32, 64"),
    ({"prior": "gaussian"}, r"prior='gaussian' is not supported"),
    ({"strategy": "tpu"}, r"strategy='tpu' is not supported"),
    ({"batch_size": 0}, r"batch_size must be positive, received batch_size=0"),
    ({"train_steps": 150, "steps_per_epoch": 100}, r"train_steps=150 is not a multiple of steps_per_epoch=100"),
    ({"d_accuracy_threshold": 1.5}, r"d_accuracy_threshold must be in \[0, 1\]"),
    ({"batchsize": 3}, r"Unknown config field 'batchsize'"),
    ({"model": "vaegan"}, r"model='vaegan' is not supported. Expected one of 'gan', 'vae_gan'"),
    ({"image_size": 100}, r"image_size=100 is not supported. Expected one of 32, 64, 128, 256"),
    ({"kl_weight": -1.0}, r"kl_weight must be >= 0 \(0 turns the term off\), received kl_weight=-1.0"),
    ({"views_per_shape": 0}, r"views_per_shape must be positive"),
    ({"reconstruction_loss": "l2"}, r"reconstruction_loss='l2' is not supported. Expected one of "
                                    r"'squared', 'cross_entropy'; pass --reconstruction_loss"),
    ({"reconstruction_positive_weight": -1.0}, r"reconstruction_positive_weight must be > 0 .*received -1.0"),
    ({"reconstruction_positive_weight": 3.0, "reconstruction_loss": "squared"},
     r"reconstruction_positive_weight=3.0 weighs the cross-entropy .* --reconstruction_positive_weight 1"),
    ({"kl_warmup_steps": -5}, r"kl_warmup_steps must be >= 0 .*received -5"),
    ({"holdout_fraction": 1.0}, r"holdout_fraction must be at least 0 and below 1, received "
                                r"holdout_fraction=1.0"),
    ({"holdout_fraction": -0.2}, r"holdout_fraction must be at least 0 and below 1"),
    ({"holdout_fraction": 0.2, "model": "vae_gan", "prior": "standard_normal"}, r"holdout_fraction is available for model='gan' only "
     r".*pass --holdout_fraction 0"),
    ({"discriminator_normalization": "layer"}, r"discriminator_normalization='layer' is not supported. "
                                               r"Expected one of 'batchnorm', 'spectral'"),
])
def test_bad_values_are_named_in_the_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_lib.CPU32.replace(**overrides)


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"Unknown preset 'paper'. Expected one of cpu32, cpu32_chairs, cpu32_recognition, cpu32_vae, paper64, paper64_vae, smoke, smoke_vae"):
        config_lib.get_preset("paper")


def test_unknown_fields_in_a_stored_config():
    values = config_lib.SMOKE.to_dict()
    values["model"]["width"] = 2
    with pytest.raises(ValueError, match=r"Unknown ModelConfig fields \['width'\]"):
        config_lib.ExperimentConfig.from_dict(values)


def test_a_config_stored_before_spectral_normalization_reads_as_the_papers_batchnorm():
    values = config_lib.CPU32.to_dict()
    del values["model"]["discriminator_normalization"]
    assert config_lib.ExperimentConfig.from_dict(values).model.discriminator_normalization == "batchnorm"


def test_vae_presets_are_their_gan_presets_with_an_encoder():
    paper = config_lib.get_preset("paper64_vae")
    assert (paper.model.model, paper.model.prior, paper.model.image_size) == ("vae_gan", "standard_normal", 256)
    assert (paper.train.kl_weight, paper.train.reconstruction_weight) == (5.0, 1e-4)
    assert paper.train == config_lib.PAPER64.train
    cpu = config_lib.get_preset("cpu32_vae")
    assert (cpu.model.model, cpu.model.prior, cpu.model.image_size) == ("vae_gan", "standard_normal", 64)
    assert (cpu.model.resolution, cpu.model.base_filters) == (32, 32)
    # The CPU preset's reconstruction recipe (see its comment in config.py); the rest is cpu32's.
    assert (cpu.train.kl_weight, cpu.train.reconstruction_weight, cpu.train.reconstruction_loss,
            cpu.train.reconstruction_positive_weight, cpu.train.kl_warmup_steps) == (1.0, 1.0, "cross_entropy", 3.0, 0)
    assert dataclasses.replace(cpu.train, kl_weight=5.0, reconstruction_weight=1e-4, reconstruction_loss="squared",
                               reconstruction_positive_weight=1.0) == config_lib.CPU32.train
    assert (paper.train.reconstruction_loss, paper.train.reconstruction_positive_weight,
            paper.train.kl_warmup_steps) == ("squared", 1.0, 0)

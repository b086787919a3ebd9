"""tf3dgan.latent and tf3dgan.latent_outputs: interpolation, arithmetic, finding z, nearest shapes."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from tf3dgan import latent, latent_outputs, priors
from tf3dgan.data import binvox
from tf3dgan.data.registry import VoxelDataset
from tf3dgan.model_source import GeneratorSource
from tf3dgan.models.generator import Generator
from tf3dgan.shape_outputs import ShapeOptions


def _decisive_generator():
    """A 16^3 generator (latent_dim 8) whose outputs span (0, 1), as a trained one's do: an
    untrained one's sit within 1e-3 of 0.5, so its last layer is scaled up."""
    keras.utils.set_random_seed(0)
    generator = Generator(resolution=16, latent_dim=8, base_filters=4)
    generator.build()
    for weight in generator.weights:
        if "deconv5" in weight.path:
            weight.assign(weight * 1000.0)
    return generator


@pytest.fixture(scope="module")
def sources():
    generator = _decisive_generator()
    return {prior: GeneratorSource(generator, prior) for prior in ("uniform", "normal")}


def test_interpolation_includes_both_endpoints_exactly():
    a, b = np.array([0.1, 0.9, 0.3], np.float32), np.array([0.7, 0.2, 0.3], np.float32)
    path = latent.interpolate(a, b, 5)
    assert path.shape == (5, 3)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_allclose(path[2], (a + b) / 2, rtol=1e-6)
    # slerp between vectors of one norm stays on that sphere.
    c = np.array([0.0, 0.5, 0.0], np.float32)
    d = np.array([0.5, 0.0, 0.0], np.float32)
    np.testing.assert_allclose(np.linalg.norm(latent.interpolate(c, d, 7, "slerp"), axis=1), 0.5, rtol=1e-5)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        latent.interpolate(a, b, 1)
    with pytest.raises(ValueError, match="same size"):
        latent.interpolate(a, b[:2], 3)


def test_arithmetic_is_a_minus_b_plus_c():
    a, b, c = (np.random.default_rng(seed).random(6).astype(np.float32) for seed in range(3))
    np.testing.assert_allclose(latent.arithmetic(a, b, c), a - b + c, rtol=1e-6)


def test_the_interpolation_run_starts_at_g_of_z_a_and_ends_at_g_of_z_b(sources, tmp_path):
    source = sources["uniform"]
    operands = latent_outputs.resolve_operands(source, seeds=[3, 7])
    record = latent_outputs.run_interpolation(source, operands, tmp_path, ShapeOptions(tile_size=32), steps=5)
    z_a, z_b = source.latents([3, 7])
    first, last = np.load(tmp_path / "step_00.npy"), np.load(tmp_path / "step_04.npy")
    np.testing.assert_array_equal(first, source.generate(z_a[None])[0])
    np.testing.assert_array_equal(last, source.generate(z_b[None])[0])
    assert not np.array_equal(first, last)
    strip = Image.open(tmp_path / "interpolation.png")
    assert strip.size == (5 * 34 - 2, 32)  # one row of five 32-pixel tiles, 2-pixel separators
    assert [shape["t"] for shape in record["shapes"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    saved = json.loads((tmp_path / "interpolation.json").read_text())
    assert saved["endpoints"] == [{"seed": 3}, {"seed": 7}] and saved["prior"] == "uniform"
    assert all((tmp_path / f"step_{i:02d}.obj").is_file() for i in range(5))


def test_the_arithmetic_run_generates_a_minus_b_plus_c(sources, tmp_path):
    source = sources["uniform"]
    operands = latent_outputs.resolve_operands(source, seeds=[1, 2, 3])
    record = latent_outputs.run_arithmetic(source, operands, tmp_path, ShapeOptions(tile_size=32))
    a, b, c = source.latents([1, 2, 3])
    np.testing.assert_allclose(record["shapes"]["result"]["z"], a - b + c, rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "result.npy"), source.generate((a - b + c)[None])[0],
                               atol=1e-6)
    assert Image.open(tmp_path / "arithmetic.png").size == (4 * 34 - 2, 32)


@pytest.mark.parametrize("prior", ["uniform", "normal"])
def test_finding_z_recovers_a_generated_shape(sources, prior):
    source = sources[prior]
    z_star = priors.sample_latent(prior, [1, 8], [42, 0]).numpy()
    target = source.generate(z_star)[0]
    starts = priors.sample_latent(prior, [4, 8], [0, 1]).numpy()
    baseline = max(latent.iou(grid > 0.5, target > 0.5) for grid in source.generate(starts))
    fit = latent.find_latent(source.differentiable_generator(), target, prior, 8, steps=100)
    assert baseline < 0.8  # the starts alone are not the answer
    assert fit.iou > 0.8
    assert fit.loss == pytest.approx(fit.start_losses.min())
    bound = (0.0, 1.0) if prior == "uniform" else (-3 * priors.NORMAL_STDDEV, 3 * priors.NORMAL_STDDEV)
    assert bound[0] <= fit.z.min() and fit.z.max() <= bound[1]


def test_finding_z_from_a_shape_file(sources, tmp_path):
    source = sources["normal"]
    target = source.generate(source.latents([11]))[0]
    np.save(tmp_path / "target.npy", target)
    z, descriptions = latent_outputs.resolve_operands(
        source, shape_paths=[tmp_path / "target.npy"], fit=latent_outputs.FitOptions(steps=60))
    assert z.shape == (1, 8) and descriptions[0]["fit_iou"] > 0.8
    assert descriptions[0]["shape"] == str(tmp_path / "target.npy")
    # .binvox files as write_shape writes them come back as the same grid.
    binvox.write_binvox(tmp_path / "target.binvox", (target > 0.5).astype(np.uint8), scale=16.0)
    np.testing.assert_array_equal(latent_outputs.load_shape(tmp_path / "target.binvox", 16), target > 0.5)
    with pytest.raises(ValueError, match="either seeds or shape files"):
        latent_outputs.resolve_operands(source, seeds=[1], shape_paths=[tmp_path / "target.npy"])
    with pytest.raises(ValueError, match="expected one of .npy"):
        latent_outputs.load_shape(tmp_path / "target.txt", 16)


def test_shape_files_are_read_at_the_model_resolution(tmp_path):
    small = np.zeros((8, 8, 8), np.float32)
    small[2:6, 2:6, 0:4] = 1
    np.save(tmp_path / "small.npy", small)
    grid = latent_outputs.load_shape(tmp_path / "small.npy", 16)
    assert grid.shape == (16, 16, 16) and grid.sum() == 8 * small.sum()
    np.save(tmp_path / "odd.npy", np.zeros((12, 12, 12)))
    with pytest.raises(ValueError, match="12 does not divide 16"):
        latent_outputs.load_shape(tmp_path / "odd.npy", 16)


def _reference_iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_iou_matrix_matches_numpy():
    rng = np.random.default_rng(0)
    samples = rng.random((3, 8, 8, 8)) > 0.6
    shapes = rng.random((5, 8, 8, 8)) > 0.4
    shapes[4] = False
    expected = np.array([[_reference_iou(a, b) for b in shapes] for a in samples])
    np.testing.assert_allclose(latent.iou_matrix(samples, shapes), expected, rtol=1e-6)
    assert latent.iou_matrix(np.zeros((1, 8, 8, 8)), np.zeros((1, 8, 8, 8)))[0, 0] == 1.0


def test_nearest_shapes_finds_a_copy_and_ranks_by_iou():
    rng = np.random.default_rng(1)
    shapes = (rng.random((6, 8, 8, 8)) > 0.5).astype(np.uint8)
    upsampled = latent.upsample_to(shapes, 16)  # the data is 8^3, the samples 16^3
    samples = np.stack([upsampled[4] * 0.9, rng.random((16, 16, 16))]).astype(np.float32)
    indices, ious = latent.nearest_shapes(samples, shapes, k=3)
    assert indices[0, 0] == 4 and ious[0, 0] == 1.0
    expected = np.array([_reference_iou(samples[1] > 0.5, shape) for shape in upsampled])
    np.testing.assert_array_equal(indices[1], np.argsort(-expected, kind="stable")[:3])
    np.testing.assert_allclose(ious[1], np.sort(expected)[::-1][:3], rtol=1e-6)


def test_the_nearest_run_pairs_each_sample_with_its_neighbours(sources, tmp_path):
    source = sources["uniform"]
    copies = (source.generate(source.latents([5, 6])) > 0.5).astype(np.uint8)
    other = np.zeros((2, 16, 16, 16), np.uint8)
    other[:, :4] = 1
    dataset = VoxelDataset(voxels=np.concatenate([other, copies]), labels=np.array([0, 0, 1, 1]),
                           class_names=("wall", "copy"), description="test shapes")
    record = latent_outputs.run_nearest(source, [5, 6], dataset, tmp_path, ShapeOptions(tile_size=32), k=2)
    first = record["samples"][0]["neighbours"][0]
    assert first == {"index": 2, "class": "copy", "iou": 1.0}
    assert record["samples"][1]["neighbours"][0]["index"] == 3 and record["max_iou"] == 1.0
    assert Image.open(tmp_path / "nearest.png").size == (3 * 34 - 2, 2 * 34 - 2)


@pytest.mark.parametrize("prior, low, high", [("uniform", 0.0, 1.0), ("normal", -0.99, 0.99),
                                              ("standard_normal", -3.0, 3.0)])
def test_project_to_prior_clips_to_the_priors_support(prior, low, high):
    z = np.array([[-10.0, -0.5, 0.0, 0.5, 10.0]], np.float32)
    projected = np.asarray(latent.project_to_prior(z, prior))
    np.testing.assert_allclose(projected, np.clip(z, low, high), rtol=1e-6)
    with pytest.raises(ValueError, match="prior='cauchy' is not supported"):
        latent.project_to_prior(z, "cauchy")

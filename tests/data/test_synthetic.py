"""Tests for the procedural furniture dataset (tf3dgan.data.synthetic)."""

import time

import numpy as np
import pytest
from scipy import ndimage

from tf3dgan.data.synthetic import SYNTHETIC_CLASSES, make_shape, make_synthetic_dataset

RESOLUTIONS = (16, 32, 64)


@pytest.fixture(scope="module")
def datasets():
    """A few shapes per class at every resolution, generated once for the module."""
    counts = {16: 12, 32: 12, 64: 4}
    return {resolution: make_synthetic_dataset(counts[resolution], resolution, seed=3)
            for resolution in RESOLUTIONS}


def _max_pool(voxels: np.ndarray, output_size: int) -> np.ndarray:
    """Max-pool [N, R, R, R] down to flattened [N, output_size^3] float features."""
    count, resolution = voxels.shape[0], voxels.shape[1]
    factor = resolution // output_size
    pooled = voxels.reshape(count, output_size, factor, output_size, factor,
                            output_size, factor).max(axis=(2, 4, 6))
    return pooled.reshape(count, -1).astype(np.float32)


def test_class_names_and_order():
    assert SYNTHETIC_CLASSES == ("chair", "table", "bed", "sofa", "lamp")


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_dataset_dtypes_shapes_and_values(datasets, resolution):
    voxels, labels = datasets[resolution]
    per_class = voxels.shape[0] // len(SYNTHETIC_CLASSES)
    assert voxels.shape == (per_class * 5, resolution, resolution, resolution)
    assert voxels.dtype == np.uint8
    assert labels.dtype == np.int64
    assert labels.shape == (voxels.shape[0],)
    assert set(np.unique(voxels).tolist()) == {0, 1}


def test_labels_are_interleaved(datasets):
    _, labels = datasets[32]
    np.testing.assert_array_equal(labels, np.arange(len(labels)) % 5)
    # Any prefix is balanced to within one shape per class.
    for prefix in (3, 7, 11, 23):
        counts = np.bincount(labels[:prefix], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_subset_of_classes_gets_contiguous_labels():
    voxels, labels = make_synthetic_dataset(3, 16, seed=0, classes=["lamp", "table"])
    np.testing.assert_array_equal(labels, [0, 1, 0, 1, 0, 1])
    # Lamps are tall and narrow, tables wide: label 0 must be the lamp.
    footprint = voxels.any(axis=3).sum(axis=(1, 2))
    assert footprint[labels == 0].max() < footprint[labels == 1].min()


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_shapes_stand_on_floor_inside_margin_and_centred(datasets, resolution):
    voxels, labels = datasets[resolution]
    margin = max(1, resolution // 32)
    for shape, label in zip(voxels.astype(bool), labels):
        name = SYNTHETIC_CLASSES[label]
        assert shape.any(), name
        assert shape[:, :, 0].any(), f"{name} does not touch the floor"
        # Nothing in the side or top margins.
        assert not shape[:margin].any() and not shape[-margin:].any(), name
        assert not shape[:, :margin].any() and not shape[:, -margin:].any(), name
        assert not shape[:, :, -margin:].any(), name
        occupied = np.argwhere(shape)
        box_center = (occupied.min(axis=0) + occupied.max(axis=0) + 1) / 2
        assert np.all(np.abs(box_center[:2] - resolution / 2) <= 1.0), name
        # Mass may sit towards the back (chair backs, sofa backs) but stays near the middle.
        centroid = occupied.mean(axis=0) + 0.5
        assert np.all(np.abs(centroid[:2] - resolution / 2) <= resolution / 5), name
        # Scaled to fill the grid: the largest dimension spans most of it.
        extent = occupied.max(axis=0) - occupied.min(axis=0) + 1
        assert extent.max() >= 0.75 * resolution, name


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_shapes_are_single_solid_pieces(datasets, resolution):
    voxels, labels = datasets[resolution]
    for shape, label in zip(voxels, labels):
        # Thin legs and poles must survive rasterisation and stay attached.
        _, components = ndimage.label(shape, structure=np.ones((3, 3, 3)))
        assert components == 1, SYNTHETIC_CLASSES[label]


def test_occupancy_in_plausible_range_per_class():
    voxels, labels = make_synthetic_dataset(40, 32, seed=1)
    occupancy = voxels.reshape(len(voxels), -1).mean(axis=1)
    # (min, max) allowed per shape and (min, max) for the class mean.
    expected = {
        "chair": ((0.005, 0.12), (0.015, 0.06)),
        "table": ((0.005, 0.15), (0.015, 0.07)),
        "bed": ((0.02, 0.30), (0.05, 0.15)),
        "sofa": ((0.02, 0.30), (0.05, 0.15)),
        "lamp": ((0.001, 0.20), (0.01, 0.06)),
    }
    for label, name in enumerate(SYNTHETIC_CLASSES):
        values = occupancy[labels == label]
        (low, high), (mean_low, mean_high) = expected[name]
        assert values.min() >= low and values.max() <= high, (name, values.min(), values.max())
        assert mean_low <= values.mean() <= mean_high, (name, values.mean())
    assert 0.03 <= occupancy.mean() <= 0.12


def test_class_shapes_match_their_furniture():
    voxels, labels = make_synthetic_dataset(20, 32, seed=2)
    for shape, label in zip(voxels.astype(bool), labels):
        name = SYNTHETIC_CLASSES[label]
        occupied = np.argwhere(shape)
        extent = occupied.max(axis=0) - occupied.min(axis=0) + 1
        height, width = extent[2], max(extent[0], extent[1])
        if name == "lamp":
            assert height > width, "lamps are taller than wide"
        elif name == "chair":
            assert height > width, "chairs are taller than they are wide"
        elif name in ("bed", "sofa", "table"):
            assert height < width, f"{name}s are wider than tall"
        if name == "table":
            # The top is the widest layer and sits high; the floor layer is just feet.
            layer_area = shape.sum(axis=(0, 1))
            top_layer = int(np.argmax(layer_area))
            assert top_layer > height // 2
            assert layer_area[0] < 0.7 * layer_area[top_layer]


@pytest.mark.parametrize("resolution", (16, 32))
def test_classes_are_distinguishable_by_nearest_neighbour(resolution):
    train_voxels, train_labels = make_synthetic_dataset(40, resolution, seed=10)
    test_voxels, test_labels = make_synthetic_dataset(20, resolution, seed=20)
    train_features = _max_pool(train_voxels, 8)
    test_features = _max_pool(test_voxels, 8)
    # Hamming distance between binary 8^3 occupancy patterns.
    distances = (test_features[:, None, :] != train_features[None, :, :]).sum(axis=2)
    predictions = train_labels[np.argmin(distances, axis=1)]
    accuracy = float(np.mean(predictions == test_labels))
    assert accuracy > 0.9, accuracy


def test_shapes_within_a_class_differ():
    voxels, labels = make_synthetic_dataset(20, 32, seed=4)
    for label, name in enumerate(SYNTHETIC_CLASSES):
        shapes = voxels[labels == label].reshape(20, -1).astype(np.float32)
        assert len({shape.tobytes() for shape in shapes}) == 20, f"repeated {name}"
        intersection = shapes @ shapes.T
        sizes = shapes.sum(axis=1)
        iou = intersection / (sizes[:, None] + sizes[None, :] - intersection)
        off_diagonal = iou[~np.eye(20, dtype=bool)]
        assert off_diagonal.mean() < 0.7, (name, off_diagonal.mean())
        # Sizes vary too, not just positions.
        assert sizes.std() / sizes.mean() > 0.1, name


def test_same_seed_gives_identical_arrays():
    first = make_synthetic_dataset(3, 32, seed=7, rotate=True)
    second = make_synthetic_dataset(3, 32, seed=7, rotate=True)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_different_seed_gives_different_shapes():
    first, _ = make_synthetic_dataset(2, 32, seed=7)
    second, _ = make_synthetic_dataset(2, 32, seed=8)
    for index in range(len(first)):
        assert not np.array_equal(first[index], second[index])


def test_shape_does_not_depend_on_num_per_class():
    small, _ = make_synthetic_dataset(2, 16, seed=5)
    large, _ = make_synthetic_dataset(4, 16, seed=5)
    np.testing.assert_array_equal(small, large[:len(small)])


def test_make_shape_is_deterministic_in_generator_state():
    first = make_shape("chair", 32, np.random.default_rng(123))
    second = make_shape("chair", 32, np.random.default_rng(123))
    assert first.dtype == bool and first.shape == (32, 32, 32)
    np.testing.assert_array_equal(first, second)


def test_rotate_turns_shapes_about_the_up_axis():
    plain, _ = make_synthetic_dataset(6, 32, seed=9)
    rotated, _ = make_synthetic_dataset(6, 32, seed=9, rotate=True)
    turned = 0
    for original, candidate in zip(plain, rotated):
        matches = [k for k in range(4) if np.array_equal(np.rot90(original, k, axes=(0, 1)),
                                                         candidate)]
        assert matches, "rotated shape is not a quarter turn of the unrotated one"
        turned += 0 not in matches
        assert candidate[:, :, 0].any()
    assert turned >= 10  # About 3/4 of the 30 shapes should have been turned.


def test_generation_speed():
    start = time.perf_counter()
    voxels, _ = make_synthetic_dataset(200, 32, seed=0)
    elapsed = time.perf_counter() - start
    assert voxels.shape[0] == 1000
    assert elapsed < 10.0, elapsed


def test_unknown_class_name_is_rejected_with_accepted_names():
    with pytest.raises(ValueError, match=r"'chairs'.*\('chair', 'table', 'bed', 'sofa', 'lamp'\)"):
        make_synthetic_dataset(2, 32, classes=["chairs"])
    with pytest.raises(ValueError, match="unknown synthetic class 'desk'"):
        make_shape("desk", 32, np.random.default_rng(0))


@pytest.mark.parametrize("resolution", (8, 48, 128, 32.0))
def test_bad_resolution_is_rejected(resolution):
    with pytest.raises(ValueError, match=r"resolution must be one of \(16, 32, 64\), got"):
        make_synthetic_dataset(2, resolution)
    with pytest.raises(ValueError, match="resolution must be one of"):
        make_shape("chair", resolution, np.random.default_rng(0))


@pytest.mark.parametrize("num_per_class", (0, -3))
def test_bad_num_per_class_is_rejected(num_per_class):
    with pytest.raises(ValueError, match=rf"num_per_class must be an integer >= 1, "
                                         rf"got {num_per_class}; pass"):
        make_synthetic_dataset(num_per_class, 32)


def test_bad_class_lists_and_seed_are_rejected():
    with pytest.raises(ValueError, match="classes is empty"):
        make_synthetic_dataset(2, 16, classes=[])
    with pytest.raises(ValueError, match="repeated"):
        make_synthetic_dataset(2, 16, classes=["bed", "bed"])
    with pytest.raises(ValueError, match=r"wrap it in a list, e.g. classes=\['bed'\]"):
        make_synthetic_dataset(2, 16, classes="bed")
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        make_synthetic_dataset(2, 16, seed=-1)

"""tf3dgan.metrics against straightforward NumPy references, and the metrics' known extremes."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from tf3dgan import metrics


def _random_sets(seed=0, sizes=(5, 6), resolution=8, density=0.3):
    rng = np.random.default_rng(seed)
    return [rng.random((size, resolution, resolution, resolution)) < density for size in sizes]


def _cube(resolution, low, high):
    grid = np.zeros((resolution,) * 3, bool)
    grid[low:high, low:high, low:high] = True
    return grid


# --- NumPy references: loops over pairs, brute-force distances -----------------------------

def _reference_iou_distance(a, b):
    result = np.zeros((len(a), len(b)))
    for i, first in enumerate(a):
        for j, second in enumerate(b):
            union = np.logical_or(first, second).sum()
            result[i, j] = 0.0 if union == 0 else 1.0 - np.logical_and(first, second).sum() / union
    return result


def _reference_chamfer(p, q):
    squared = ((p[:, None, :] - q[None, :, :]) ** 2).sum(axis=-1)
    return squared.min(axis=1).mean() + squared.min(axis=0).mean()


def _reference_set_metrics(cross, within_g, within_r):
    count_g, count_r = cross.shape
    covered = {int(np.argmin(row)) for row in cross}
    mmd = np.mean([cross[:, r].min() for r in range(count_r)])
    # 1-NNA with fractional credit among equidistant nearest neighbours.
    items = [("g", i) for i in range(count_g)] + [("r", j) for j in range(count_r)]

    def distance(x, y):
        (sx, ix), (sy, iy) = x, y
        if sx == "g" and sy == "g":
            return within_g[ix, iy]
        if sx == "r" and sy == "r":
            return within_r[ix, iy]
        return cross[ix, iy] if sx == "g" else cross[iy, ix]

    credits = []
    for x in items:
        others = [(y, distance(x, y)) for y in items if y != x]
        best = min(d for _, d in others)
        tied = [y for y, d in others if d == best]
        credits.append(sum(y[0] == x[0] for y in tied) / len(tied))
    return len(covered) / count_r, mmd, np.mean(credits)


def _reference_frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr (C_a C_b)^(1/2) = sum of sqrt of the eigenvalues of C_a^(1/2) C_b C_a^(1/2) (symmetric PSD).
    values, vectors = np.linalg.eigh(cov_a)
    root_a = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(np.clip(middle, 0, None)).sum()


# --- distances -------------------------------------------------------------------------

def test_iou_distances_match_the_loop_reference_and_the_empty_conventions():
    a, b = _random_sets()
    a[0] = False  # an empty sample
    b[1] = False  # an empty reference shape
    got = metrics.iou_distances(a, b)
    np.testing.assert_allclose(got, _reference_iou_distance(a, b), rtol=0, atol=1e-6)
    assert got[0, 1] == 0.0 and got[0, 0] == 1.0
    # Probabilities are thresholded.
    np.testing.assert_allclose(metrics.iou_distances(a * 0.9, b * 0.6, threshold=0.7),
                               _reference_iou_distance(a, np.zeros_like(b)), atol=1e-6)


def test_surface_voxels_are_the_occupied_voxels_with_an_empty_face_neighbour():
    rng = np.random.default_rng(3)
    grid = rng.random((6, 6, 6)) < 0.6
    padded = np.pad(grid, 1)
    expected = np.zeros_like(grid)
    for i, j, k in np.argwhere(grid):
        neighbours = [padded[i + 1 + di, j + 1 + dj, k + 1 + dk]
                      for di, dj, dk in [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]]
        expected[i, j, k] = not all(neighbours)
    np.testing.assert_array_equal(metrics.surface_voxels(grid), expected)
    assert metrics.surface_voxels(_cube(8, 2, 6)).sum() == 4**3 - 2**3


def test_voxel_surface_points_are_surface_voxel_centres_in_grid_edge_units():
    grid = _cube(8, 2, 6)
    (points,) = metrics.surface_points(grid[None], 40, seed=1)
    assert points.shape == (40, 3)
    indices = points * 8 - 0.5
    np.testing.assert_allclose(indices, np.round(indices), atol=1e-12)
    surface = metrics.surface_voxels(grid)
    assert all(surface[tuple(index)] for index in np.round(indices).astype(int))
    assert len({tuple(p) for p in points}) == 40  # 56 surface voxels: drawn without replacement
    # More points than surface voxels: drawn with replacement.
    (many,) = metrics.surface_points(grid[None], 100, seed=1)
    assert many.shape == (100, 3) and len({tuple(p) for p in many}) <= 56


def test_identical_grids_get_identical_points_wherever_they_are_and_empty_grids_none():
    a, _ = _random_sets()
    empty = np.zeros((1, 8, 8, 8), bool)
    first = metrics.surface_points(np.concatenate([a, empty]), 16, seed=5)
    second = metrics.surface_points(a[::-1], 16, seed=5)
    for index in range(len(a)):
        np.testing.assert_array_equal(first[index], second[len(a) - 1 - index])
    assert first[-1].shape == (0, 3)


def test_mesh_surface_points_lie_on_the_marching_cubes_surface_of_a_cube():
    (points,) = metrics.surface_points(_cube(8, 2, 6)[None], 200, surface="mesh", seed=0)
    assert points.shape == (200, 3)
    coordinates = points * 8
    assert coordinates.min() >= 2 - 1e-6 and coordinates.max() <= 6 + 1e-6
    # Each point is within half a voxel of a face of the box [2, 6]^3 (edges are bevelled).
    to_face = np.minimum(np.abs(coordinates - 2), np.abs(coordinates - 6)).min(axis=1)
    assert to_face.max() <= 0.5 + 1e-6


def test_chamfer_distances_match_brute_force():
    rng = np.random.default_rng(0)
    first = [rng.random((count, 3)) for count in (7, 3, 10)]
    second = [rng.random((count, 3)) for count in (4, 9)]
    got = metrics.chamfer_distances(first, second)
    expected = np.array([[_reference_chamfer(p, q) for q in second] for p in first])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    within = metrics.chamfer_distances(first)
    np.testing.assert_allclose(within, np.array([[_reference_chamfer(p, q) for q in first] for p in first]),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(within, within.T)
    assert np.all(np.diag(within) == 0)


def test_chamfer_to_an_empty_shape_is_infinite_and_zero_between_two():
    empty, point = np.zeros((0, 3)), np.array([[0.5, 0.5, 0.5]])
    got = metrics.chamfer_distances([empty, point], [empty, point])
    assert got[0, 0] == 0 and got[1, 1] == 0 and math.isinf(got[0, 1]) and math.isinf(got[1, 0])


# --- COV, MMD, 1-NNA -------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_set_metrics_match_the_loop_reference_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Small integers: many ties, which the reference breaks as documented.
    cross = rng.integers(0, 4, (5, 6)).astype(float)
    within_g = rng.integers(0, 4, (5, 5)).astype(float)
    within_r = rng.integers(0, 4, (6, 6)).astype(float)
    within_g, within_r = np.triu(within_g, 1) + np.triu(within_g, 1).T, np.triu(within_r, 1) + np.triu(within_r, 1).T
    cov, mmd, nna = _reference_set_metrics(cross, within_g, within_r)
    got = metrics.set_metrics(cross, within_g, within_r)
    assert got["cov"] == pytest.approx(cov) and got["mmd"] == pytest.approx(mmd)
    assert got["1nna"] == pytest.approx(nna)


def test_set_metrics_on_iou_distances_of_real_grids_match_the_reference():
    a, b = _random_sets(seed=4, sizes=(5, 6))
    cross, within_a, within_b = metrics.iou_distances(a, b), metrics.iou_distances(a), metrics.iou_distances(b)
    cov, mmd, nna = _reference_set_metrics(_reference_iou_distance(a, b), _reference_iou_distance(a, a),
                                           _reference_iou_distance(b, b))
    got = metrics.set_metrics(cross, within_a, within_b)
    assert got == pytest.approx({"cov": cov, "mmd": mmd, "1nna": nna})


def test_the_tie_convention_gives_half_credit_for_one_tie_in_each_set():
    # g0's nearest neighbours are g1 and r0, both at 1: half a correct answer.
    within_g = np.array([[0.0, 1.0], [1.0, 0.0]])
    cross = np.array([[1.0], [5.0]])
    within_r = np.zeros((1, 1))
    # g0: tie (g1, r0) -> 0.5; g1: nearest g0 -> 1; r0: nearest g0 -> 0.
    assert metrics.one_nearest_neighbour_accuracy(cross, within_g, within_r) == pytest.approx(1.5 / 3)


def test_a_set_against_itself_covers_everything_at_distance_zero_and_is_a_copy_for_1nna():
    _, reference = _random_sets(seed=5, sizes=(1, 8))
    result = metrics.ReferenceSet(reference, distances=("iou", "chamfer"), chamfer_points=32).compare(reference)
    for distance in ("iou", "chamfer"):
        assert result[f"cov_{distance}"] == 1.0
        assert result[f"mmd_{distance}"] == 0.0
        # Every shape's nearest neighbour is its twin in the other set: 0, memorization.
        assert result[f"1nna_{distance}"] == 0.0
    assert result["jsd"] == 0.0


def test_two_draws_of_one_distribution_give_1nna_about_one_half():
    rng = np.random.default_rng(0)

    def draw(count):
        grids = np.zeros((count, 8, 8, 8), bool)
        for grid in grids:  # a box of random extent
            low = rng.integers(0, 3, 3)
            high = low + rng.integers(3, 6, 3)
            grid[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = True
        return grids

    first, second = draw(60), draw(60)
    result = metrics.ReferenceSet(second, distances=("iou", "chamfer"), chamfer_points=64).compare(first)
    for distance in ("iou", "chamfer"):
        assert 0.35 <= result[f"1nna_{distance}"] <= 0.65, result
        assert result[f"cov_{distance}"] > 0.4


def test_disjoint_shapes_give_1nna_one():
    small = np.stack([_cube(8, 0, 2 + i % 2) for i in range(6)])
    large = np.stack([_cube(8, 3 - i % 2, 8) for i in range(5)])
    result = metrics.ReferenceSet(large, distances=("iou", "chamfer"), chamfer_points=32).compare(small)
    assert result["1nna_iou"] == pytest.approx(1.0) and result["1nna_chamfer"] == pytest.approx(1.0)
    assert result["mmd_iou"] > 0.8 and result["jsd"] > 0.3


def test_reference_set_compare_equals_the_separate_functions():
    a, b = _random_sets(seed=6)
    result = metrics.ReferenceSet(b, distances=("iou", "chamfer"), chamfer_points=16, seed=3).compare(a)
    iou = metrics.set_metrics(metrics.iou_distances(a, b), metrics.iou_distances(a), metrics.iou_distances(b))
    pa, pb = metrics.surface_points(a, 16, seed=3), metrics.surface_points(b, 16, seed=3)
    chamfer = metrics.set_metrics(metrics.chamfer_distances(pa, pb), metrics.chamfer_distances(pa),
                                  metrics.chamfer_distances(pb))
    assert result == pytest.approx({
        "num_samples": 5, "num_reference": 6, "empty_samples": 0,
        **{f"{k}_iou": v for k, v in iou.items()}, **{f"{k}_chamfer": v for k, v in chamfer.items()},
        "jsd": metrics.occupancy_jsd(a, b), "stray_voxels": metrics.stray_voxel_fraction(a)})


# --- JSD and Frechet -------------------------------------------------------------------

def test_occupancy_jsd_matches_numpy_and_scipy_and_its_extremes():
    a, b = _random_sets(seed=7)
    p = a.mean(0).ravel() / a.mean(0).sum()
    q = b.mean(0).ravel() / b.mean(0).sum()
    m = (p + q) / 2
    expected = 0.5 * np.sum(p[p > 0] * np.log(p[p > 0] / m[p > 0])) + 0.5 * np.sum(q[q > 0] * np.log(q[q > 0] / m[q > 0]))
    assert metrics.occupancy_jsd(a, b) == pytest.approx(expected, rel=1e-12)
    assert metrics.occupancy_jsd(a, b) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)
    assert metrics.occupancy_jsd(a, a) == 0.0
    # Same occupancy distribution, different set sizes.
    assert metrics.occupancy_jsd(np.concatenate([a, a]), a) == pytest.approx(0.0, abs=1e-15)
    # Disjoint occupancy: ln 2.
    assert metrics.occupancy_jsd(_cube(8, 0, 3)[None], _cube(8, 4, 8)[None]) == pytest.approx(math.log(2))


def test_occupancy_jsd_refuses_an_all_empty_set_and_other_resolutions():
    a, _ = _random_sets()
    with pytest.raises(ValueError, match="All 2 grids are empty at threshold=0.5"):
        metrics.occupancy_jsd(np.zeros((2, 8, 8, 8)), a)
    with pytest.raises(ValueError, match=r"different resolutions.*upsample_to"):
        metrics.occupancy_jsd(a, np.ones((2, 4, 4, 4)))


def test_frechet_distance_matches_the_eigenvalue_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(loc=0.5, size=(50, 6)) @ rng.normal(size=(6, 6))
    assert metrics.frechet_distance(a, b) == pytest.approx(_reference_frechet(a, b), rel=1e-6)
    # One dimension: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2.
    x, y = rng.normal(1.0, 2.0, (30, 1)), rng.normal(-1.0, 0.5, (30, 1))
    expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert metrics.frechet_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_identical_features_is_zero_even_when_rank_deficient():
    rng = np.random.default_rng(1)
    full = rng.normal(size=(100, 8))
    assert metrics.frechet_distance(full, full) == pytest.approx(0.0, abs=1e-8)
    few = np.maximum(rng.normal(size=(10, 32)), 0)  # fewer samples than features, ReLU zeros
    assert metrics.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-5)
    other = np.maximum(rng.normal(size=(10, 32)), 0)
    value = metrics.frechet_distance(few, other)
    assert math.isfinite(value) and value > 0


def test_frechet_needs_two_samples_and_one_feature_size():
    with pytest.raises(ValueError, match=r"N >= 2.*received shape \(1, 3\)"):
        metrics.frechet_distance(np.ones((1, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="different feature sizes"):
        metrics.frechet_distance(np.random.rand(4, 3), np.random.rand(4, 2))


def test_reference_set_with_features_reports_the_frechet_distance():
    a, b = _random_sets(seed=8, sizes=(12, 10))

    def features(grids):  # occupancy per octant: 8 numbers
        grids = np.asarray(grids, float)
        return grids.reshape(len(grids), 2, 4, 2, 4, 2, 4).mean(axis=(2, 4, 6)).reshape(len(grids), 8)

    result = metrics.ReferenceSet(b, features=features).compare(a)
    assert result["frechet"] == pytest.approx(_reference_frechet(features(a), features(b)), rel=1e-6)
    assert metrics.ReferenceSet(b, features=features).compare(b)["frechet"] == pytest.approx(0, abs=1e-8)


def test_bad_inputs_say_what_was_received():
    with pytest.raises(ValueError, match=r"\[N, R, R, R\], received shape \(8, 8, 8\)"):
        metrics.iou_distances(np.zeros((8, 8, 8)))
    with pytest.raises(ValueError, match="threshold must be strictly between 0 and 1, received 1.5"):
        metrics.binarize(np.zeros((1, 2, 2, 2)), 1.5)
    with pytest.raises(ValueError, match="NaN"):
        metrics.binarize(np.full((1, 2, 2, 2), np.nan))
    with pytest.raises(ValueError, match=r"subset of \('iou', 'chamfer'\), received \('emd',\)"):
        metrics.ReferenceSet(np.ones((2, 2, 2, 2)), distances=("emd",))
    with pytest.raises(ValueError, match="must have shape"):
        metrics.one_nearest_neighbour_accuracy(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))


def test_stray_voxel_shares_count_what_lies_outside_the_largest_26_connected_piece():
    grids = np.zeros((4, 8, 8, 8), dtype=np.uint8)
    grids[0, 1:4, 1:4, 1:4] = 1                    # one cube of 27: no stray voxel
    grids[1, 1:4, 1:4, 1:4] = 1
    grids[1, 6, 6, 6] = 1                          # one voxel apart from it: 1 of 28
    grids[2, 1:4, 1:4, 1:4] = 1
    grids[2, 4, 4, 4] = 1                          # touches the cube's corner: connected
    shares = metrics.stray_voxel_shares(grids)
    np.testing.assert_allclose(shares[:3], [0.0, 1 / 28, 0.0])
    assert np.isnan(shares[3])                     # an empty grid has no piece
    assert metrics.stray_voxel_fraction(grids) == pytest.approx((1 / 28) / 3)
    assert metrics.stray_voxel_fraction(np.zeros((2, 8, 8, 8))) is None


def test_stray_voxel_shares_match_a_flood_fill_reference():
    grids = np.random.default_rng(11).random((3, 10, 10, 10)) > 0.8
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)]
    for grid, share in zip(grids, metrics.stray_voxel_shares(grids)):
        seen, largest = np.zeros_like(grid), 0
        for start in map(tuple, np.argwhere(grid)):
            if seen[start]:
                continue
            stack, size = [start], 0
            seen[start] = True
            while stack:
                point = stack.pop()
                size += 1
                for offset in offsets:
                    near = tuple(p + o for p, o in zip(point, offset))
                    if all(0 <= n < 10 for n in near) and grid[near] and not seen[near]:
                        seen[near] = True
                        stack.append(near)
            largest = max(largest, size)
        assert share == pytest.approx((grid.sum() - largest) / grid.sum())

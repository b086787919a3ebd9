"""Generation quality metrics: how close a set of generated shapes is to a reference set.

Every metric works on occupancy grids thresholded at ``threshold`` (0.5 by default), so
a generator's probabilities and a dataset's {0, 1} grids are compared as the same kind
of object. Reference grids that are coarser than the samples are upsampled first by the
caller (`tf3dgan.latent.upsample_to`); the functions here require one resolution.

Distances between two shapes:

- IoU distance, 1 - |A and B| / |A or B| of the occupied voxels; two empty grids are at
  distance 0, an empty and a non-empty one at 1. All pairs at once, as one matrix
  product of the flattened grids (`iou_distances`).
- Chamfer distance between point sets sampled on the two surfaces (`surface_points`):
  the mean squared distance from each point of A to its nearest point of B plus the same
  from B to A (the squared form of Achlioptas et al., ICML 2018, with means instead of
  sums so the number of points does not scale it). Coordinates are in units of the grid
  edge (a grid spans [0, 1]^3), so values do not depend on the resolution. Nearest
  points come from `scipy.spatial.cKDTree`. A shape with no surface (an empty grid) is at
  distance 0 from another empty one and infinitely far from every other shape.

Set metrics, from the distances D[g, r] between the generated set S_g and the
reference set S_r (Achlioptas et al. 2018 for COV and MMD; Lopez-Paz and Oquab 2017 and
Yang et al. (PointFlow) 2019 for 1-NNA):

- COV, coverage: the fraction of reference shapes that are the nearest reference shape
  of at least one generated shape. Ties go to the lowest reference index. Higher is
  better; a set that covers every mode scores 1.
- MMD, minimum matching distance: the mean over reference shapes of the distance to the
  nearest generated shape. Lower is better; 0 when every reference shape was generated.
- 1-NNA, 1-nearest-neighbour accuracy: each shape of S_g and S_r is classified as
  generated or reference by the set of its nearest neighbour among all the other shapes
  of both sets (leave-one-out); the score is the accuracy. 0.5 is ideal (the sets cannot
  be told apart); 1 means every shape's nearest neighbour is in its own set (the sets
  are disjoint); below 0.5 means shapes are nearer to the other set than to their own,
  and a generated set made of exact copies of the reference scores 0 (each shape's
  nearest neighbour is its twin in the other set): the signature of memorization.
  Tie convention: when several shapes are equally near, the shape counts as the
  fraction of them that lie in its own set (the expected accuracy of breaking the tie
  at random), e.g. 0.5 for one tie in each set.

Per-shape quality:

- Stray voxels: the share of a shape's occupied voxels outside its largest 26-connected
  component (`stray_voxel_shares`), averaged over the set's non-empty shapes. Real
  shapes are not 0: thin binvox surfaces break into pieces too, so a set is compared
  with the reference's own share, never with 0.

Distribution metrics:

- JSD: the Jensen-Shannon divergence between the occupancy distributions of the two
  sets (Achlioptas et al. 2018): each set's mean occupancy grid (the fraction of its
  shapes that occupy each voxel), normalized to sum to 1, compared with natural
  logarithms; 0 for identical distributions, at most ln 2.
- Fréchet distance between Gaussians fitted to features of the two sets (as FID, Heusel
  et al. 2017): ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)). The features come
  from a voxel classifier that the project trains itself (`tf3dgan.feature_classifier`).
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Callable, Sequence

import numpy as np
from scipy import linalg
from scipy.spatial import cKDTree

DISTANCES = ("iou", "chamfer")
SURFACES = ("voxel", "mesh")
DEFAULT_CHAMFER_POINTS = 1024
# |imaginary part| allowed on the diagonal of sqrtm's result before it is an error (as pytorch-fid).
_SQRTM_IMAGINARY_TOLERANCE = 1e-3


def binarize(voxels, threshold: float = 0.5, name: str = "voxels") -> np.ndarray:
    """Occupied voxels of a batch of grids.

    Args:
        voxels: [N, R, R, R] (or [N, R, R, R, 1]) occupancies: probabilities or {0, 1}.
        threshold: Voxels above it are occupied; strictly between 0 and 1.
        name: What to call the argument in error messages.

    Returns:
        bool [N, R, R, R].

    Raises:
        ValueError: for a threshold outside (0, 1), a batch that is not [N, R, R, R] with
            N >= 1, or non-finite values.
    """
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, received {threshold!r}; "
                         "0.5 is the usual choice.")
    grids = np.asarray(voxels)
    if grids.ndim == 5 and grids.shape[-1] == 1:
        grids = grids[..., 0]
    if grids.ndim != 4 or len(grids) == 0 or len(set(grids.shape[1:])) != 1:
        raise ValueError(
            f"{name} must be a non-empty batch of cubic grids [N, R, R, R], received shape "
            f"{grids.shape}; stack single grids with np.stack.")
    if grids.dtype == bool:
        return grids
    if not np.issubdtype(grids.dtype, np.number):
        raise ValueError(f"{name} must be numeric or bool, received dtype {grids.dtype}.")
    if np.issubdtype(grids.dtype, np.floating) and not np.all(np.isfinite(grids)):
        raise ValueError(f"{name} holds NaN or infinite values; check the generator's output.")
    return grids > threshold


def stray_voxel_shares(voxels, threshold: float = 0.5) -> np.ndarray:
    """Per grid, the share of its occupied voxels outside its largest connected component.

    Components are 26-connected (voxels that touch at a face, an edge or a corner),
    as a surface extracted from the grid would join them. 0 for a grid in one
    piece; NaN for an empty grid (it has no component).

    Args:
        voxels: [N, R, R, R] occupancies.
        threshold: Occupancy threshold.

    Returns:
        float64 [N].
    """
    from scipy import ndimage

    grids = binarize(voxels, threshold)
    structure = np.ones((3, 3, 3), dtype=bool)
    shares = np.full(len(grids), np.nan)
    for index, grid in enumerate(grids):
        occupied = int(grid.sum())
        if not occupied:
            continue
        labels, count = ndimage.label(grid, structure=structure)
        largest = int(np.bincount(labels.ravel())[1:].max()) if count else 0
        shares[index] = (occupied - largest) / occupied
    return shares


def stray_voxel_fraction(voxels, threshold: float = 0.5) -> float | None:
    """The mean over non-empty grids of `stray_voxel_shares`; None if every grid is empty."""
    shares = stray_voxel_shares(voxels, threshold)
    shares = shares[np.isfinite(shares)]
    return float(shares.mean()) if len(shares) else None


def _check_same_resolution(first: np.ndarray, second: np.ndarray) -> None:
    if first.shape[1:] != second.shape[1:]:
        raise ValueError(
            f"The two sets have different resolutions: {first.shape[1:]} and {second.shape[1:]}. "
            "Upsample the coarser one first (tf3dgan.latent.upsample_to), as the training "
            "pipeline does.")


def iou_distances(first, second=None, threshold: float = 0.5) -> np.ndarray:
    """1 - IoU of every shape of `first` with every shape of `second`.

    Args:
        first: [N, R, R, R] occupancies.
        second: [M, R, R, R] occupancies; default `first`.
        threshold: Occupancy threshold.

    Returns:
        float64 [N, M]; 0 for two empty grids, 1 for an empty and a non-empty one.

    Raises:
        ValueError: for malformed batches or different resolutions.
    """
    from tf3dgan.latent import iou_matrix  # blocked float32 matrix products: exact counts

    a = binarize(first, threshold, "first")
    b = a if second is None else binarize(second, threshold, "second")
    _check_same_resolution(a, b)
    return 1.0 - iou_matrix(a, b).astype(np.float64)


def surface_voxels(grid: np.ndarray) -> np.ndarray:
    """The occupied voxels of a boolean grid with at least one empty face neighbour.

    The grid's outside counts as empty, so a voxel on the border of a full grid is on
    the surface.

    Returns:
        bool array of the grid's shape.
    """
    padded = np.pad(np.asarray(grid, dtype=bool), 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    interior = inner.copy()
    size = inner.shape
    for axis in range(3):
        for shift in (0, 2):
            index = [slice(1, 1 + size[0]), slice(1, 1 + size[1]), slice(1, 1 + size[2])]
            index[axis] = slice(shift, shift + size[axis])
            interior &= padded[tuple(index)]
    return inner & ~interior


def surface_points(voxels, num_points: int = DEFAULT_CHAMFER_POINTS, *, threshold: float = 0.5,
                   surface: str = "voxel", seed: int = 0) -> list[np.ndarray]:
    """Samples `num_points` points on the surface of each shape.

    Args:
        voxels: [N, R, R, R] occupancies.
        num_points: Points per shape.
        threshold: Occupancy threshold.
        surface: "voxel": centres of the surface voxels (`surface_voxels`), drawn without
            replacement when there are enough and with replacement otherwise; "mesh":
            uniform on the area of the marching-cubes mesh of the thresholded grid
            (`tf3dgan.mesh.voxels_to_mesh`).
        seed: Seeds the draws. Each shape's generator is seeded with (seed, a checksum of
            its occupied voxels), so identical grids get identical points wherever they
            are in a batch (and are at Chamfer distance 0).

    Returns:
        A list of N float64 arrays [num_points, 3] in units of the grid edge (voxel
        [i, j, k] is the cube [i, i+1] x [j, j+1] x [k, k+1] divided by R); an empty
        grid gives an array [0, 3].

    Raises:
        ValueError: for malformed voxels, num_points < 1 or an unknown surface.
    """
    grids = binarize(voxels, threshold)
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, received {num_points!r}; "
                         f"{DEFAULT_CHAMFER_POINTS} is the default.")
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {SURFACES}, received {surface!r}.")
    resolution = grids.shape[1]
    points = []
    for grid in grids:
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(np.packbits(grid).tobytes())])
        if not grid.any():
            points.append(np.zeros((0, 3)))
            continue
        if surface == "voxel":
            centres = np.argwhere(surface_voxels(grid)) + 0.5
            chosen = rng.choice(len(centres), int(num_points), replace=len(centres) < num_points)
            points.append(centres[chosen] / resolution)
        else:
            import trimesh

            from tf3dgan.mesh import voxels_to_mesh

            mesh = voxels_to_mesh(grid.astype(np.float32), 0.5)
            sampled, _ = trimesh.sample.sample_surface(mesh, int(num_points), seed=rng)
            points.append(np.asarray(sampled, dtype=np.float64) / resolution)
    return points


def _directional_chamfer(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                         workers: int) -> np.ndarray:
    """D[i, j] = mean over the points of sources[i] of the squared distance to targets[j]."""
    counts = np.array([len(points) for points in sources])
    result = np.full((len(sources), len(targets)), np.inf)
    owners = np.repeat(np.arange(len(sources)), counts)
    stacked = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in sources])
    non_empty = counts > 0
    for column, target in enumerate(targets):
        if len(target) == 0:
            continue
        # One query of every source point against this target's tree: few Python calls.
        distances, _ = cKDTree(target).query(stacked, k=1, workers=workers)
        sums = np.bincount(owners, weights=distances**2, minlength=len(sources))
        result[non_empty, column] = sums[non_empty] / counts[non_empty]
    return result


def chamfer_distances(first: Sequence[np.ndarray], second: Sequence[np.ndarray] | None = None, *,
                      workers: int = 1) -> np.ndarray:
    """Chamfer distance of every point set of `first` with every point set of `second`.

    Args:
        first: N arrays [P_i, 3] (from `surface_points`).
        second: M arrays [Q_j, 3]; default `first`.
        workers: Threads of each cKDTree query (-1: all cores).

    Returns:
        float64 [N, M]: mean_p min_q |p - q|^2 + mean_q min_p |p - q|^2; 0 between two
        empty sets, inf between an empty and a non-empty one.

    Raises:
        ValueError: for an empty list or arrays that are not [P, 3].
    """
    for name, sets in (("first", first), ("second", second)):
        if sets is None:
            continue
        if len(sets) == 0:
            raise ValueError(f"{name} holds no point sets; pass at least one.")
        for points in sets:
            if np.ndim(points) != 2 or np.shape(points)[1] != 3:
                raise ValueError(f"Each point set must be [P, 3], received shape {np.shape(points)} "
                                 f"in {name}.")
    forward = _directional_chamfer(first, first if second is None else second, workers)
    backward = forward.T if second is None else _directional_chamfer(second, first, workers).T
    result = forward + backward
    empty_first = np.array([len(points) == 0 for points in first])
    empty_second = empty_first if second is None else np.array([len(points) == 0 for points in second])
    result[np.ix_(empty_first, empty_second)] = 0.0
    return result


def _check_matrix(name: str, matrix, shape=None) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty distance matrix, received shape {array.shape}.")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} to match the other matrices, received "
                         f"{array.shape}.")
    if np.isnan(array).any():
        raise ValueError(f"{name} holds NaN distances.")
    return array


def coverage(generated_to_reference) -> float:
    """COV: the fraction of reference shapes that are some generated shape's nearest reference.

    Args:
        generated_to_reference: Distances D[g, r], [N_generated, N_reference].

    Returns:
        A number in (0, 1]. Ties go to the lowest reference index.

    Raises:
        ValueError: for a malformed matrix.
    """
    matrix = _check_matrix("generated_to_reference", generated_to_reference)
    return len(np.unique(np.argmin(matrix, axis=1))) / matrix.shape[1]


def minimum_matching_distance(generated_to_reference) -> float:
    """MMD: the mean over reference shapes of the distance to the nearest generated shape.

    Args:
        generated_to_reference: Distances D[g, r], [N_generated, N_reference].

    Returns:
        A non-negative number (inf if some reference shape is infinitely far from all).

    Raises:
        ValueError: for a malformed matrix.
    """
    matrix = _check_matrix("generated_to_reference", generated_to_reference)
    return float(np.mean(np.min(matrix, axis=0)))


def one_nearest_neighbour_accuracy(generated_to_reference, generated_to_generated,
                                   reference_to_reference) -> float:
    """1-NNA: leave-one-out 1-NN accuracy of telling the two sets apart (ties: see the module).

    Args:
        generated_to_reference: D[g, r], [N, M].
        generated_to_generated: D[g, g'], [N, N] (the diagonal is ignored).
        reference_to_reference: D[r, r'], [M, M] (the diagonal is ignored).

    Returns:
        A number in [0, 1]: 0.5 for indistinguishable sets, 1 for disjoint ones, 0 for a
        set against an exact copy of itself.

    Raises:
        ValueError: for malformed or inconsistent matrices, or fewer than 2 shapes in all.
    """
    cross = _check_matrix("generated_to_reference", generated_to_reference)
    count_g, count_r = cross.shape
    within_g = _check_matrix("generated_to_generated", generated_to_generated, (count_g, count_g))
    within_r = _check_matrix("reference_to_reference", reference_to_reference, (count_r, count_r))
    full = np.block([[within_g, cross], [cross.T, within_r]])
    total = count_g + count_r
    others = ~np.eye(total, dtype=bool)
    masked = np.where(others, full, np.inf)
    nearest = masked.min(axis=1, keepdims=True)
    # A shape whose every neighbour is infinitely far ties with all of them.
    tied = others & (masked == nearest)
    labels = np.concatenate([np.zeros(count_g, bool), np.ones(count_r, bool)])
    same = tied & (labels[None, :] == labels[:, None])
    return float(np.mean(same.sum(axis=1) / tied.sum(axis=1)))


def set_metrics(generated_to_reference, generated_to_generated, reference_to_reference) -> dict:
    """COV, MMD and 1-NNA from the three distance matrices.

    Returns:
        {"cov": float, "mmd": float, "1nna": float}.

    Raises:
        ValueError: for malformed or inconsistent matrices.
    """
    return {"cov": coverage(generated_to_reference),
            "mmd": minimum_matching_distance(generated_to_reference),
            "1nna": one_nearest_neighbour_accuracy(generated_to_reference, generated_to_generated,
                                                   reference_to_reference)}


def occupancy_distribution(voxels, threshold: float = 0.5) -> np.ndarray:
    """The mean occupancy grid of a set, normalized to sum to 1.

    Raises:
        ValueError: for malformed voxels, or a set in which no voxel is occupied (its
            occupancy distribution does not exist).
    """
    grids = binarize(voxels, threshold)
    occupancy = grids.mean(axis=0, dtype=np.float64)
    total = occupancy.sum()
    if total == 0:
        raise ValueError(
            f"All {len(grids)} grids are empty at threshold={threshold}, so their occupancy "
            "distribution is undefined; check the samples (a collapsed or untrained generator) "
            "or lower the threshold.")
    return occupancy / total


def jensen_shannon_divergence(first, second) -> float:
    """JSD of two discrete distributions of the same shape (natural log; 0 log 0 = 0).

    Raises:
        ValueError: for shapes that differ or values that are negative or do not sum to 1.
    """
    p, q = np.asarray(first, np.float64).ravel(), np.asarray(second, np.float64).ravel()
    if np.shape(first) != np.shape(second):
        raise ValueError(f"The distributions differ in shape: {np.shape(first)} and {np.shape(second)}.")
    for name, values in (("first", p), ("second", q)):
        if (values < 0).any() or not math.isclose(values.sum(), 1.0, abs_tol=1e-6):
            raise ValueError(f"{name} is not a distribution (values >= 0 summing to 1); its sum is "
                             f"{values.sum()!r}.")
    middle = 0.5 * (p + q)

    def kl(values):
        positive = values > 0
        return float(np.sum(values[positive] * np.log(values[positive] / middle[positive])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def occupancy_jsd(first, second, threshold: float = 0.5) -> float:
    """JSD between the occupancy distributions of two sets of grids of one resolution.

    Raises:
        ValueError: for malformed sets, different resolutions or an all-empty set.
    """
    a, b = binarize(first, threshold, "first"), binarize(second, threshold, "second")
    _check_same_resolution(a, b)
    return jensen_shannon_divergence(occupancy_distribution(a), occupancy_distribution(b))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples, unbiased) of features [N, F].

    Raises:
        ValueError: for fewer than 2 rows or non-finite values.
    """
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"features must be [N, F] with N >= 2 (a covariance needs two samples), "
                         f"received shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("features hold NaN or infinite values.")
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def frechet_distance_from_statistics(mean_a, covariance_a, mean_b, covariance_b,
                                     eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)).

    The matrix square root (`scipy.linalg.sqrtm`) of a product of singular covariances
    (fewer samples than features) can come back non-finite or with a tiny imaginary
    part from round-off: the first is retried with eps * I added to both covariances,
    the second is dropped when the diagonal's imaginary parts are below 1e-3 (as
    pytorch-fid does).

    Raises:
        ValueError: for shapes that do not match, or an imaginary part that is not round-off.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mean_a, np.float64)), np.atleast_1d(np.asarray(mean_b, np.float64))
    sigma_a, sigma_b = np.atleast_2d(covariance_a).astype(np.float64), np.atleast_2d(covariance_b).astype(np.float64)
    size = len(mu_a)
    if mu_b.shape != (size,) or sigma_a.shape != (size, size) or sigma_b.shape != (size, size):
        raise ValueError(f"Statistics of different feature sizes: means {mu_a.shape} and {mu_b.shape}, "
                         f"covariances {sigma_a.shape} and {sigma_b.shape}.")
    with warnings.catch_warnings():
        # Singular products are the rule with few samples; the checks below handle them.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(sigma_a @ sigma_b)
        if not np.all(np.isfinite(root)):
            offset = np.eye(size) * eps
            root = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(root):
        largest = float(np.max(np.abs(np.diagonal(root).imag)))
        if largest > _SQRTM_IMAGINARY_TOLERANCE:
            raise ValueError(
                f"The matrix square root has an imaginary component of {largest:.3g}, more than "
                "round-off; the covariances are badly conditioned: use more samples than "
                "feature dimensions.")
        root = root.real
    difference = mu_a - mu_b
    value = difference @ difference + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(root)
    return float(max(value, 0.0))


def frechet_distance(features_a, features_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, F] and [M, F].

    Raises:
        ValueError: see `feature_statistics` and `frechet_distance_from_statistics`.
    """
    return frechet_distance_from_statistics(*feature_statistics(features_a),
                                            *feature_statistics(features_b), eps=eps)


class ReferenceSet:
    """A reference set, with what every comparison against it reuses (its own distances,
    surface points, occupancy distribution and feature statistics).

    Args:
        reference: [M, R, R, R] occupancies (at least 2 shapes).
        threshold: Occupancy threshold of both sets.
        distances: Which of "iou" and "chamfer" to compute COV, MMD and 1-NNA with.
        chamfer_points: Surface points per shape for the Chamfer distance.
        surface: "voxel" or "mesh", see `surface_points`.
        features: Optional callable, grids [N, R, R, R] -> features [N, F], for the
            Fréchet distance; without it no Fréchet distance is computed.
        seed: Seeds the surface points.
        workers: cKDTree query threads.

    Raises:
        ValueError: for malformed reference grids or unknown distances.
    """

    def __init__(self, reference, *, threshold: float = 0.5, distances: Sequence[str] = ("iou",),
                 chamfer_points: int = DEFAULT_CHAMFER_POINTS, surface: str = "voxel",
                 features: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                 workers: int = 1):
        unknown = [name for name in distances if name not in DISTANCES]
        if unknown or not distances:
            raise ValueError(f"distances must be a non-empty subset of {DISTANCES}, received {distances!r}.")
        self.grids = binarize(reference, threshold, "reference")
        if len(self.grids) < 2:
            raise ValueError(f"The reference set needs at least 2 shapes, received {len(self.grids)}.")
        self.threshold = threshold
        self.distances = tuple(distances)
        self.chamfer_points = chamfer_points
        self.surface = surface
        self.seed = seed
        self.workers = workers
        self.features = features
        self.occupancy = occupancy_distribution(self.grids)
        self._points = (surface_points(self.grids, chamfer_points, surface=surface, seed=seed)
                        if "chamfer" in self.distances else None)
        self._within = {name: self._matrix(name, self.grids, self._points) for name in self.distances}
        self.feature_statistics = (feature_statistics(features(self.grids))
                                   if features is not None else None)

    def __len__(self) -> int:
        return len(self.grids)

    @property
    def resolution(self) -> int:
        return int(self.grids.shape[1])

    def _matrix(self, name: str, grids, points, other=None, other_points=None) -> np.ndarray:
        if name == "iou":
            return iou_distances(grids, other)
        return chamfer_distances(points, other_points, workers=self.workers)

    def compare(self, samples) -> dict:
        """Every metric of `samples` against this reference set.

        Args:
            samples: [N, R, R, R] occupancies at the reference's resolution (N >= 2 for
                the Fréchet distance).

        Returns:
            A dict: "cov_<d>", "mmd_<d>" and "1nna_<d>" for each distance d, "jsd" (None
            when every sample is empty), "stray_voxels" (`stray_voxel_fraction`, None when
            every sample is empty), "frechet" (only with `features`),
            "num_samples", "num_reference" and "empty_samples" (all-empty grids).

        Raises:
            ValueError: for malformed samples or another resolution.
        """
        grids = binarize(samples, self.threshold, "samples")
        _check_same_resolution(grids, self.grids)
        empty = int((~grids.reshape(len(grids), -1).any(axis=1)).sum())
        result = {"num_samples": len(grids), "num_reference": len(self.grids), "empty_samples": empty}
        points = (surface_points(grids, self.chamfer_points, surface=self.surface, seed=self.seed)
                  if "chamfer" in self.distances else None)
        for name in self.distances:
            cross = self._matrix(name, grids, points, self.grids, self._points)
            within = self._matrix(name, grids, points)
            for metric, value in set_metrics(cross, within, self._within[name]).items():
                result[f"{metric}_{name}"] = value
        result["stray_voxels"] = stray_voxel_fraction(grids)
        result["jsd"] = (None if empty == len(grids)
                         else jensen_shannon_divergence(occupancy_distribution(grids), self.occupancy))
        if self.feature_statistics is not None:
            result["frechet"] = frechet_distance_from_statistics(
                *feature_statistics(self.features(grids)), *self.feature_statistics)
        return result

"""Single-image 3D reconstruction, scored as in the paper's Table 2: IoU, average precision,
and the nearest-neighbour retrieval baseline.

The benchmark that uses them is `tf3dgan.reconstruction_benchmark`
(python -m tf3dgan.evaluate --task reconstruction); the models it reads are opened by
`tf3dgan.reconstruction_models`.

Metrics, per reconstructed grid:

    IoU   |prediction > t AND truth| / |prediction > t OR truth| (1 when both are empty).
    AP    average precision over the voxels of the grid: the occupancy probability is the
          score, the ground-truth occupancy the label (scikit-learn's
          average_precision_score: sum over distinct scores s, highest first, of
          (R(s) - R(previous)) * P(s), ties counted together). On binary voxels (the
          retrieval baseline's) this is P * R + (1 - R) * (occupied fraction): the precision
          and recall of the shape, plus the step to recall 1 at threshold 0. A grid whose
          truth has no occupied voxel has no AP (NaN).

Retrieval: for each query image, the gallery image closest in L2 over all pixels (exact
for 8-bit images; ties go to the first), and the shape it shows.
"""

from __future__ import annotations

import numpy as np

from tf3dgan.progress import Progress

# ----------------------------------------------------------------------------
# Metrics.

def _flat_pairs(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, np.float32)
    truth = np.asarray(truth)
    if scores.shape != truth.shape or scores.ndim < 1:
        raise ValueError(f"scores and truth must have one shape [N, ...], received {scores.shape} "
                         f"and {truth.shape}.")
    return scores.reshape(len(scores), -1), truth.reshape(len(truth), -1) > 0.5


def iou_at_thresholds(scores, truth, thresholds) -> np.ndarray:
    """IoU of (scores > t) with truth, per grid and threshold.

    Args:
        scores: [N, ...] occupancy probabilities (or {0, 1} voxels).
        truth: [N, ...] ground-truth occupancy in {0, 1}.
        thresholds: T thresholds; a voxel is predicted occupied when strictly above.

    Returns:
        float64 [N, T]; 1.0 where both the prediction and the truth are empty.

    Raises:
        ValueError: if the shapes differ.
    """
    scores, truth = _flat_pairs(scores, truth)
    result = np.empty((len(scores), len(thresholds)), np.float64)
    for column, threshold in enumerate(thresholds):
        predicted = scores > threshold
        intersection = np.count_nonzero(predicted & truth, axis=1)
        union = np.count_nonzero(predicted | truth, axis=1)
        result[:, column] = np.where(union == 0, 1.0, intersection / np.maximum(union, 1))
    return result


def iou(scores, truth, threshold: float = 0.5) -> np.ndarray:
    """IoU of (scores > threshold) with truth, per grid: float64 [N] (see `iou_at_thresholds`)."""
    return iou_at_thresholds(scores, truth, [threshold])[:, 0]


def average_precision(scores, truth) -> np.ndarray:
    """Average precision over the voxels of each grid, as scikit-learn computes it.

    `sklearn.metrics.average_precision_score(truth[i].ravel(), scores[i].ravel())` for
    each i: the voxels ranked by score, tied scores taken together, AP = sum over the
    distinct scores of (recall gained) * precision.

    Args:
        scores: [N, ...] occupancy probabilities (or {0, 1} voxels).
        truth: [N, ...] ground-truth occupancy in {0, 1}.

    Returns:
        float64 [N]; NaN for a grid whose truth has no occupied voxel (AP is undefined).

    Raises:
        ValueError: if the shapes differ.
    """
    scores, truth = _flat_pairs(scores, truth)
    return np.array([_average_precision_row(row, hits) for row, hits in zip(scores, truth)], np.float64)


def _average_precision_row(scores: np.ndarray, truth: np.ndarray) -> float:
    positives = np.count_nonzero(truth)
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    # The last voxel of each run of equal scores: one point of the precision-recall curve.
    ends = np.append(np.flatnonzero(np.diff(ranked)), len(ranked) - 1)
    true_positives = np.cumsum(truth[order], dtype=np.int64)[ends]
    precision = true_positives / (ends + 1.0)
    recall = true_positives / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


# ----------------------------------------------------------------------------
# The retrieval baseline.

def nearest_images(queries, gallery, *, chunk_size: int = 1024, label: str | None = None):
    """For each query image, the gallery image closest in L2 over all pixels.

    Exact for 8-bit images: the distances are computed in float64 from integer
    values, so equal images are at distance 0 and ties go to the lowest index.

    Args:
        queries: uint8 (or float) [Q, H, W, C].
        gallery: [G, H, W, C], the same pixel layout.
        chunk_size: Gallery images per matrix product (bounds the memory).
        label: A progress line's label; None for no progress line.

    Returns:
        (indices int64 [Q] into the gallery, squared distances float64 [Q]).

    Raises:
        ValueError: if the images' shapes differ or the gallery is empty.
    """
    queries = np.asarray(queries)
    gallery = np.asarray(gallery)
    if queries.shape[1:] != gallery.shape[1:]:
        raise ValueError(f"Query images {queries.shape[1:]} and gallery images {gallery.shape[1:]} "
                         "differ in shape; render both at one image size.")
    if len(gallery) == 0:
        raise ValueError("The gallery is empty: no training render to retrieve.")
    flat_queries = queries.reshape(len(queries), -1).astype(np.float64)
    query_norms = np.einsum("ij,ij->i", flat_queries, flat_queries)
    best_index = np.zeros(len(queries), np.int64)
    best_distance = np.full(len(queries), np.inf)
    progress = Progress(label, len(gallery)) if label else None
    for start in range(0, len(gallery), chunk_size):
        chunk = gallery[start:start + chunk_size].reshape(-1, flat_queries.shape[1]).astype(np.float64)
        distances = (query_norms[:, None] - 2.0 * flat_queries @ chunk.T
                     + np.einsum("ij,ij->i", chunk, chunk)[None, :])
        index = np.argmin(distances, axis=1)
        distance = distances[np.arange(len(queries)), index]
        better = distance < best_distance  # strict: an earlier chunk keeps a tie
        best_index[better] = start + index[better]
        best_distance[better] = distance[better]
        if progress:
            progress.update(len(chunk))
    if progress:
        progress.finish()
    return best_index, np.maximum(best_distance, 0.0)


def retrieve_shapes(test_images, train_pairs, *, chunk_size: int = 1024, label: str | None = None):
    """The retrieval baseline's prediction: for each test image, the training shape of the
    nearest training render.

    Args:
        test_images: uint8 [Q, H, W, 3].
        train_pairs: A `PairSet` of the training split (images, shape_index, voxels).
        chunk_size, label: As `nearest_images`.

    Returns:
        (shape indices int64 [Q] into train_pairs.voxels, nearest render indices [Q],
        squared distances [Q]).
    """
    nearest, distances = nearest_images(test_images, train_pairs.images, chunk_size=chunk_size, label=label)
    return np.asarray(train_pairs.shape_index, np.int64)[nearest], nearest, distances

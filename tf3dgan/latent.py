"""Walking a generator's latent space: interpolation, arithmetic, inversion, nearest shapes.

- `interpolate(z_a, z_b, steps)`: the path from z_a to z_b, endpoints included (linear, as in
  the paper's figures, or spherical).
- `arithmetic(z_a, z_b, z_c)`: z_a - z_b + z_c, the paper's shape arithmetic.
- `find_latent(generate, target, prior)`: the z whose G(z) is closest to a given shape,
  by minimizing the mean squared difference ||G(z) - target||^2 / R^3 with Adam from a few
  starts drawn from the prior. After every step z is projected back into the prior's
  support: clipped to [0, 1] for Uniform(0, 1), and to +-3 standard deviations per
  coordinate for Normal(0, 0.33) and Normal(0, 1) (their support is unbounded, but G
  never saw z beyond that during training, 99.7% of the draws being inside).
- `nearest_shapes(samples, shapes)`: for each sample, the training shapes with the highest
  IoU, to show that a sample is not a copy of one of them.

IoU is |A and B| / |A or B| of the occupied voxels (two empty grids have IoU 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

INTERPOLATIONS = ("linear", "slerp")
NORMAL_CLIP_STDDEVS = 3.0
# Dataset shapes per IoU block: bounds the float32 temporaries to about 64 MiB at 64^3.
_IOU_BLOCK_VOXELS = 16 * 1024 * 1024


def _check_latent_vector(name: str, z) -> np.ndarray:
    vector = np.asarray(z, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
        raise ValueError(
            f"{name} must be one finite latent vector of shape [latent_dim], received shape "
            f"{vector.shape}; take a row of a batch (z[i]).")
    return vector


def interpolate(z_a, z_b, steps: int, method: str = "linear") -> np.ndarray:
    """Latent vectors from z_a to z_b, both included.

    Args:
        z_a: float [latent_dim], the start.
        z_b: float [latent_dim], the end.
        steps: Number of vectors, at least 2.
        method: "linear" (z_a + t (z_b - z_a); stays in the uniform prior's cube) or
            "slerp" (along the great circle, keeping the norm of normal-prior vectors
            typical; falls back to linear for (anti)parallel vectors).

    Returns:
        float32 [steps, latent_dim]; row 0 is z_a and row steps - 1 is z_b exactly.

    Raises:
        ValueError: for vectors of different sizes, steps < 2 or an unknown method.
    """
    start = _check_latent_vector("z_a", z_a)
    end = _check_latent_vector("z_b", z_b)
    if start.shape != end.shape:
        raise ValueError(f"z_a and z_b must have the same size, received {start.shape} and {end.shape}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (the two endpoints included), received {steps!r}.")
    if method not in INTERPOLATIONS:
        raise ValueError(f"method must be one of {INTERPOLATIONS}, received {method!r}.")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]
    a, b = start.astype(np.float64), end.astype(np.float64)
    path = (1 - t) * a + t * b
    if method == "slerp":
        norms = np.linalg.norm(a) * np.linalg.norm(b)
        cosine = np.clip(a @ b / norms, -1.0, 1.0) if norms > 0 else 1.0
        angle = np.arccos(cosine)
        if np.sin(angle) > 1e-6:
            path = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    path = path.astype(np.float32)
    path[0], path[-1] = start, end  # exact endpoints, whatever the rounding
    return path


def arithmetic(z_a, z_b, z_c) -> np.ndarray:
    """z_a - z_b + z_c (e.g. "chair with arms" - "chair" + "table"), not projected.

    Returns:
        float32 [latent_dim].

    Raises:
        ValueError: for vectors of different sizes.
    """
    vectors = [_check_latent_vector(name, z) for name, z in (("z_a", z_a), ("z_b", z_b), ("z_c", z_c))]
    if len({vector.shape for vector in vectors}) != 1:
        raise ValueError(f"z_a, z_b and z_c must have the same size, received {[v.shape for v in vectors]}.")
    return (vectors[0] - vectors[1] + vectors[2]).astype(np.float32)


def project_to_prior(z, prior: str):
    """Clips z into the prior's support (see the module docstring); works on NumPy and tensors.

    Raises:
        ValueError: for an unknown prior.
    """
    import tensorflow as tf

    from tf3dgan import priors
    from tf3dgan.config import PRIORS

    if prior == "uniform":
        return tf.clip_by_value(z, 0.0, 1.0)
    if prior == "normal":
        bound = NORMAL_CLIP_STDDEVS * priors.NORMAL_STDDEV
        return tf.clip_by_value(z, -bound, bound)
    if prior == "standard_normal":
        return tf.clip_by_value(z, -NORMAL_CLIP_STDDEVS, NORMAL_CLIP_STDDEVS)
    raise ValueError(f"prior={prior!r} is not supported; expected one of {PRIORS}.")


@dataclasses.dataclass(frozen=True)
class LatentFit:
    """What `find_latent` found.

    Attributes:
        z: float32 [latent_dim], the best start's final z.
        voxels: float32 [R, R, R], G(z).
        loss: Its mean squared difference to the target.
        iou: IoU of G(z) > threshold with target > threshold.
        start_losses: float32 [num_starts], each start's final loss.
    """

    z: np.ndarray
    voxels: np.ndarray
    loss: float
    iou: float
    start_losses: np.ndarray


def find_latent(generate, target, prior: str, latent_dim: int, *, num_starts: int = 4,
                steps: int = 200, learning_rate: float = 0.05, seed: int = 0,
                threshold: float = 0.5) -> LatentFit:
    """Finds z with G(z) close to `target` by Adam on ||G(z) - target||^2, from several starts.

    Args:
        generate: Differentiable z [N, latent_dim] -> voxels [N, R, R, R] (a model source's
            `differentiable_generator()`).
        target: [R, R, R] occupancies in [0, 1] at the generator's resolution.
        prior: The training prior ("uniform" or "normal"): starts are drawn from it and
            z is kept in its support.
        latent_dim: Size of z.
        num_starts: Independent starts, optimized together as one batch.
        steps: Adam steps.
        learning_rate: Adam's learning rate.
        seed: Seeds the starts.
        threshold: For the reported IoU.

    Returns:
        A `LatentFit` for the start with the lowest final loss.

    Raises:
        ValueError: for a target that is not one grid of the generator's resolution, or
            bad counts.
    """
    import keras
    import tensorflow as tf

    from tf3dgan import priors

    grid = np.asarray(target, dtype=np.float32)
    if grid.ndim != 3:
        raise ValueError(f"target must be one grid [R, R, R], received shape {grid.shape}.")
    for name, value in (("num_starts", num_starts), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, received {value!r}.")
    start = priors.sample_latent(prior, [num_starts, latent_dim], tf.constant([seed, 1], tf.int64))
    z = tf.Variable(start)
    optimizer = keras.optimizers.Adam(learning_rate)
    target_tensor = tf.constant(grid[None])
    probe = generate(start[:1])
    if tuple(probe.shape[1:]) != grid.shape:
        raise ValueError(
            f"target has shape {grid.shape} but the generator makes {tuple(probe.shape[1:])} grids; "
            "resample the shape to the model's resolution first.")

    def per_start_loss(voxels):
        return tf.reduce_mean(tf.square(voxels - target_tensor), axis=[1, 2, 3])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            losses = per_start_loss(generate(z))
            total = tf.reduce_sum(losses)  # starts are independent: the sum's gradient is each one's
        optimizer.apply_gradients([(tape.gradient(total, z), z)])
        z.assign(project_to_prior(z, prior))
        return losses

    for _ in range(int(steps)):
        step()
    voxels = generate(tf.convert_to_tensor(z))
    losses = per_start_loss(voxels).numpy()
    best = int(np.argmin(losses))
    best_voxels = np.asarray(voxels[best], dtype=np.float32)
    return LatentFit(z=z.numpy()[best], voxels=best_voxels, loss=float(losses[best]),
                     iou=float(iou(best_voxels > threshold, grid > threshold)),
                     start_losses=losses.astype(np.float32))


def iou(a, b) -> float:
    """IoU of two boolean grids of the same shape (1.0 when both are empty).

    Raises:
        ValueError: for different shapes.
    """
    first, second = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"Grids of different shapes: {first.shape} and {second.shape}.")
    union = np.logical_or(first, second).sum()
    return 1.0 if union == 0 else float(np.logical_and(first, second).sum() / union)


def upsample_to(shapes, resolution: int) -> np.ndarray:
    """Repeats each voxel of [N, S, S, S] grids so they become [N, R, R, R] (S must divide R).

    Raises:
        ValueError: if S does not divide R.
    """
    array = np.asarray(shapes)
    size = array.shape[1]
    if size == resolution:
        return array
    if resolution % size:
        raise ValueError(
            f"The shapes are {size}^3 and cannot be compared with {resolution}^3 samples: "
            f"{size} does not divide {resolution}. Use a dataset whose resolution divides the model's.")
    factor = resolution // size
    for axis in (1, 2, 3):
        array = np.repeat(array, factor, axis=axis)
    return array


def iou_matrix(samples, shapes) -> np.ndarray:
    """IoU of every sample with every shape.

    Args:
        samples: Bool-like [N, R, R, R].
        shapes: Bool-like [M, R, R, R].

    Returns:
        float32 [N, M].

    Raises:
        ValueError: if the grids differ in size.
    """
    first = np.asarray(samples).astype(bool)
    second = np.asarray(shapes).astype(bool)
    if first.shape[1:] != second.shape[1:] or first.ndim != 4:
        raise ValueError(
            f"samples and shapes must be [N, R, R, R] and [M, R, R, R] of one R, received "
            f"{first.shape} and {second.shape}.")
    flat_samples = first.reshape(len(first), -1).astype(np.float32)
    sample_counts = flat_samples.sum(axis=1)
    block = max(1, _IOU_BLOCK_VOXELS // max(1, flat_samples.shape[1]))
    result = np.empty((len(first), len(second)), dtype=np.float32)
    for begin in range(0, len(second), block):
        flat = second[begin:begin + block].reshape(-1, flat_samples.shape[1]).astype(np.float32)
        intersection = flat_samples @ flat.T
        union = sample_counts[:, None] + flat.sum(axis=1)[None, :] - intersection
        result[:, begin:begin + block] = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    return result


def nearest_shapes(samples, shapes, k: int = 3, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The `k` shapes with the highest IoU with each sample.

    Args:
        samples: [N, R, R, R] occupancies; occupied where > `threshold`.
        shapes: [M, S, S, S] {0, 1} grids (a dataset's `voxels`); S must divide R (they are
            upsampled by repetition, as the training pipeline does).
        k: Neighbours per sample (at most M).
        threshold: Occupancy threshold of the samples.

    Returns:
        (indices int64 [N, k] into `shapes`, ious float32 [N, k]), best first; ties go to
        the lower index.

    Raises:
        ValueError: for bad shapes, k < 1, or S not dividing R.
    """
    sample_grid = np.asarray(samples)
    shape_grid = np.asarray(shapes)
    if sample_grid.ndim != 4 or shape_grid.ndim != 4 or len(shape_grid) == 0:
        raise ValueError(
            f"samples and shapes must be non-empty batches [N, R, R, R], received "
            f"{sample_grid.shape} and {shape_grid.shape}.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, received {k!r}.")
    count = min(int(k), len(shape_grid))
    matrix = iou_matrix(sample_grid > threshold, upsample_to(shape_grid > 0.5, sample_grid.shape[1]))
    # A stable sort on -IoU keeps the lower index first among ties.
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :count]
    return order.astype(np.int64), np.take_along_axis(matrix, order, axis=1)

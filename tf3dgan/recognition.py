"""The recognition protocol: a linear SVM on frozen features, C chosen on the training split.

For one set of features (the model's, or a baseline's):

1. The features are standardized with the mean and standard deviation of the
   training samples the classifier is fitted on (within cross-validation: of the
   fold's training part); the test split never contributes.
2. C is chosen from a small grid by stratified k-fold cross-validation on the
   training split alone: the C with the best mean fold accuracy, the smallest
   such C on a tie. The test split is not looked at until step 3.
3. The SVM is refitted with that C on the whole training split and scored on
   the test split: accuracy overall, per class (recall) and a confusion matrix.

The limited-data curve repeats 1-3 on random subsets of n training samples per
class (the whole class when it has fewer), several draws each, scored on the
whole test split.

Solvers (both a linear SVM with an L2 penalty on standardized features):

    gram       (default) scikit-learn's SVC(kernel="precomputed") on the Gram matrix
               X X^T of the standardized features: libsvm's hinge-loss SVM. The
               decision function is linear in the features; with fewer samples than
               features (ModelNet10: ~4,000 shapes, ~4,000-7,000 features) the dual is
               small, and one fit takes ~0.1-0.5 s here, after one matrix product
               (~1-5 s). Over the classes it is one-vs-rest by default, like
               liblinear's LinearSVC (the data README's reference figures);
               `multiclass="ovo"` gives libsvm's own one-vs-one, which the benchmark
               used before (the README says which figures were measured so).
    liblinear  LinearSVC(dual=True): liblinear's squared-hinge SVM, one-vs-rest, as in
               the data README's reference figures. On these two cores one fit on
               ModelNet10's 3,584 discriminator features took 10 s at C=1e-4, 56 s at
               C=1e-3 and hit max_iter=1000 after 129 s at C=1e-2 (a 5-fold C search
               would take tens of minutes); fits that stop at `max_iter` are counted
               in the result's `not_converged`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from tf3dgan.progress import note

SOLVERS = ("gram", "liblinear")
MULTICLASS_SCHEMES = ("ovr", "ovo")
DEFAULT_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
DEFAULT_CURVE_SIZES = (10, 25, 50, 100)


@dataclasses.dataclass(frozen=True)
class SVMSettings:
    """How the linear SVM is fitted and its C chosen.

    Attributes:
        c_grid: The values of C tried by cross-validation.
        cv_folds: Folds of the stratified cross-validation (fewer when a class has
            fewer training samples; at least 2).
        solver: "gram" or "liblinear" (module docstring).
        multiclass: "ovr" (one-vs-rest: a binary SVM per class, the largest decision
            value wins) or "ovo" (one-vs-one: a binary SVM per pair of classes,
            majority vote; the gram solver only).
        max_iter: liblinear's iteration limit (unused by "gram").
        tol: The solver's stopping tolerance.
        seed: Seeds the folds and the subsets of the limited-data curve.
    """

    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    cv_folds: int = 5
    solver: str = "gram"
    multiclass: str = "ovr"
    max_iter: int = 1000
    tol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ValueError(f"c_grid must hold positive values of C, received {self.c_grid!r}; "
                             "pass e.g. --c_grid 0.0001,0.001,0.01.")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2, received {self.cv_folds!r}.")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not supported; expected one of {SOLVERS}.")
        if self.multiclass not in MULTICLASS_SCHEMES:
            raise ValueError(f"multiclass={self.multiclass!r} is not supported; expected one of "
                             f"{MULTICLASS_SCHEMES}.")
        if self.solver == "liblinear" and self.multiclass != "ovr":
            raise ValueError("liblinear's LinearSVC is one-vs-rest only; pass --multiclass ovr with "
                             "--solver liblinear, or --solver gram for one-vs-one.")
        if self.max_iter < 1 or not self.tol > 0:
            raise ValueError(f"max_iter and tol must be positive, received {self.max_iter!r}, {self.tol!r}.")


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scales every feature to zero mean and unit variance on `train`; applies the same to `others`.

    Features constant on `train` are only centred (scikit-learn's StandardScaler).

    Returns:
        float64 copies: [train, *others].
    """
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.asarray(train, np.float64))
    return [scaler.transform(np.asarray(array, np.float64)) for array in (train, *others)]


def predict_for_grid(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray,
                     c_values, settings: SVMSettings) -> tuple[dict, int]:
    """Fits one SVM per C on (train_x, train_y), standardized on train_x; predicts eval_x.

    Args:
        train_x: float [n, F] features of the training samples.
        train_y: int [n] labels.
        eval_x: float [m, F] features to classify.
        c_values: The values of C.
        settings: The solver's settings.

    Returns:
        ({C: int predictions [m]}, the number of fits that stopped at max_iter).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import SVC, LinearSVC

    train_std, eval_std = standardize(train_x, eval_x)
    predictions, not_converged = {}, 0
    if settings.solver == "gram":
        # Hinge-loss SVM in the dual: only inner products of the samples are needed.
        kernel_train = train_std @ train_std.T
        kernel_eval = eval_std @ train_std.T
        for c in c_values:
            model = SVC(C=c, kernel="precomputed", tol=settings.tol, cache_size=500, max_iter=-1)
            if settings.multiclass == "ovr":
                # Each binary SVM sees every training row, so the precomputed kernel passes whole.
                model = OneVsRestClassifier(model)
            predictions[c] = model.fit(kernel_train, train_y).predict(kernel_eval)
        return predictions, not_converged
    for c in c_values:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = LinearSVC(C=c, dual=True, tol=settings.tol, max_iter=settings.max_iter,
                              random_state=settings.seed).fit(train_std, train_y)
        not_converged += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        predictions[c] = model.predict(eval_std)
    return predictions, not_converged


def _folds(train_y: np.ndarray, settings: SVMSettings) -> int:
    counts = np.bincount(np.unique(train_y, return_inverse=True)[1])
    if len(counts) < 2:
        raise ValueError(f"The training samples hold {len(counts)} class; a classifier needs two or more.")
    smallest = int(counts.min())
    if smallest < 2:
        raise ValueError(
            "Cross-validation needs at least 2 training samples of every class, but one class "
            f"has {smallest}; use more training data (or fewer classes with --classes).")
    return min(settings.cv_folds, smallest)


def choose_c(train_x: np.ndarray, train_y: np.ndarray, settings: SVMSettings,
             label: str = "") -> dict:
    """Chooses C by stratified cross-validation on the training samples alone.

    Args:
        train_x: float [n, F].
        train_y: int [n].
        settings: Grid, folds, solver, seed.
        label: Prefix of the progress lines ("" for none).

    Returns:
        {"c": the chosen C, "cv_accuracy": {C: mean fold accuracy}, "cv_fold_accuracies":
        {C: [per fold]}, "cv_folds": folds used, "not_converged": count, "seconds"}.

    Raises:
        ValueError: if a class has fewer than 2 samples.
    """
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    folds = _folds(train_y, settings)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=settings.seed)
    fold_scores = {c: [] for c in settings.c_grid}
    not_converged = 0
    for fold, (fit_index, val_index) in enumerate(splitter.split(train_x, train_y)):
        predictions, stopped = predict_for_grid(train_x[fit_index], train_y[fit_index],
                                                train_x[val_index], settings.c_grid, settings)
        not_converged += stopped
        for c, predicted in predictions.items():
            fold_scores[c].append(float(np.mean(predicted == train_y[val_index])))
        if label:
            note(f"{label}: CV fold {fold + 1}/{folds} done ({time.perf_counter() - started:.1f} s)")
    means = {c: float(np.mean(scores)) for c, scores in fold_scores.items()}
    best = max(means.values())
    chosen = min(c for c, score in means.items() if score == best)  # ties: the stronger penalty
    if label:
        grid = ", ".join(f"C={c:g}: {score:.4f}" for c, score in means.items())
        note(f"{label}: CV accuracy {grid} -> C={chosen:g}")
    return {"c": chosen, "cv_accuracy": means, "cv_fold_accuracies": fold_scores,
            "cv_folds": folds, "not_converged": not_converged,
            "seconds": time.perf_counter() - started}


def classification_summary(true_y: np.ndarray, predicted_y: np.ndarray, labels) -> dict:
    """Accuracy, per-class accuracy (recall) and the confusion matrix.

    Args:
        true_y: int [m] true labels.
        predicted_y: int [m] predictions.
        labels: The label values, in the order of the per-class list and of the
            confusion matrix's rows (true) and columns (predicted).

    Returns:
        {"accuracy", "mean_per_class_accuracy", "per_class_accuracy": [per label, None
        for a label without test samples], "per_class_count": [...], "confusion": [[...]]}.
    """
    labels = [int(label) for label in labels]
    position = {label: index for index, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    for true, predicted in zip(np.asarray(true_y), np.asarray(predicted_y)):
        confusion[position[int(true)], position[int(predicted)]] += 1
    counts = confusion.sum(axis=1)
    per_class = [float(confusion[i, i] / counts[i]) if counts[i] else None for i in range(len(labels))]
    present = [value for value in per_class if value is not None]
    return {
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "mean_per_class_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class_accuracy": per_class,
        "per_class_count": [int(count) for count in counts],
        "confusion": confusion.tolist(),
    }


def evaluate_features(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray, settings: SVMSettings, labels=None,
                      label: str = "") -> dict:
    """The whole protocol on one set of features: choose C, refit, score on the test split.

    Args:
        train_x, train_y: Training features [n, F] and labels [n].
        test_x, test_y: Test features [m, F] and labels [m].
        settings: The SVM's settings.
        labels: Label values for the per-class lists (default: those of both splits).
        label: Prefix of the progress lines.

    Returns:
        `choose_c`'s fields, `classification_summary`'s fields, "labels",
        "fit_seconds" (the final fit and prediction) and "num_features".
    """
    if labels is None:
        labels = np.union1d(np.unique(train_y), np.unique(test_y))
    chosen = choose_c(train_x, train_y, settings, label)
    started = time.perf_counter()
    predictions, stopped = predict_for_grid(train_x, train_y, test_x, [chosen["c"]], settings)
    summary = classification_summary(test_y, predictions[chosen["c"]], labels)
    chosen["not_converged"] += stopped
    return {**chosen, **summary, "labels": [int(value) for value in labels],
            "fit_seconds": time.perf_counter() - started, "num_features": int(train_x.shape[1])}


def sample_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` random samples of every class (all of a smaller class), sorted."""
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def limited_data_curve(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                       test_y: np.ndarray, sizes, draws: int, settings: SVMSettings,
                       label: str = "") -> list[dict]:
    """Test accuracy with `n` training samples per class, for each n in `sizes`.

    Each of `draws` draws takes a random subset (`sample_per_class`, seeded by
    (settings.seed, n, draw)) and runs the whole protocol on it: standardization,
    C by cross-validation within the subset, the fit, the test score. When every
    class has at most n samples, the subset is the whole split and one draw is made.

    Args:
        train_x, train_y, test_x, test_y: As for `evaluate_features`.
        sizes: Samples per class.
        draws: Draws per size, at least 1.
        settings: The SVM's settings.
        label: Prefix of the progress lines.

    Returns:
        One dict per size: "per_class", "draws", "accuracies" (one per draw), "mean",
        "std", "chosen_c" (per draw), "train_size" (samples per draw), "capped_classes"
        (classes with fewer than n samples, used whole), "seconds".

    Raises:
        ValueError: if `draws` < 1 or a size is < 2.
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, received {draws!r}.")
    class_values, class_counts = np.unique(train_y, return_counts=True)
    results = []
    for per_class in sizes:
        if per_class < 2:
            raise ValueError(f"Curve sizes must be at least 2 samples per class (for the C search), "
                             f"received {per_class!r}.")
        started = time.perf_counter()
        capped = [int(value) for value, count in zip(class_values, class_counts) if count < per_class]
        size_draws = 1 if len(capped) == len(class_values) else draws
        accuracies, chosen_cs = [], []
        for draw in range(size_draws):
            rng = np.random.default_rng([settings.seed, int(per_class), draw])
            index = sample_per_class(train_y, int(per_class), rng)
            chosen = choose_c(train_x[index], train_y[index], settings)
            predictions, _ = predict_for_grid(train_x[index], train_y[index], test_x,
                                              [chosen["c"]], settings)
            accuracies.append(float(np.mean(predictions[chosen["c"]] == test_y)))
            chosen_cs.append(chosen["c"])
        result = {"per_class": int(per_class), "draws": size_draws, "accuracies": accuracies,
                  "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
                  "chosen_c": chosen_cs, "train_size": len(index), "capped_classes": capped,
                  "seconds": time.perf_counter() - started}
        results.append(result)
        if label:
            note(f"{label}: {per_class} per class: {result['mean']:.4f} +- {result['std']:.4f} "
                 f"over {size_draws} draw(s) ({result['seconds']:.1f} s)")
    return results

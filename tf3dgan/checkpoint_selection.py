"""Choosing a training run's checkpoint for the recognition benchmark, without the test split.

A GAN's features do not improve monotonically: on ModelNet10 neighbouring checkpoints
of one run differ by about a point of test accuracy. Picking the checkpoint with the
best test accuracy would report a number tuned on the test set. Here every checkpoint
of a workdir is scored on the training split alone, and the best is chosen; ties go to
the later step (the longer trained model). The test split is never loaded:
`select_checkpoint` reads only the training split, so the choice cannot depend on it.

How a checkpoint is scored depends on the run:

    held-out accuracy  the run was trained with --holdout_fraction (workdir/heldout.npz,
                       `tf3dgan.data.holdout`): the benchmark's linear SVM (C by CV) is
                       fitted on the shapes the GAN saw and scored on the held-out
                       shapes it never saw.
    CV accuracy        otherwise: the benchmark's cross-validation
                       (`recognition.choose_c`) on the whole training split, shapes the
                       GAN trained on, which could favour a discriminator that has
                       memorized them (README, "Recognition").

    python -m tf3dgan.evaluate --model runs/mn10_flip --select_checkpoint ...

runs this first and then the whole benchmark on the chosen checkpoint; its table and
plot are drawn by `tf3dgan.recognition_report`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from tf3dgan import feature_sources, recognition
from tf3dgan.data import holdout
from tf3dgan.progress import note

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.index$")


def _workdir(path: str | Path) -> Path:
    """The workdir named by itself or by its checkpoints/ folder."""
    path = Path(path)
    return path.parent if path.name == "checkpoints" else path


def workdir_checkpoints(path: str | Path):
    """A training workdir's (or its checkpoints/ folder's) config and checkpoints.

    Returns:
        (ExperimentConfig, [(step, checkpoint prefix)]): the step read from the prefix
        `ckpt-<step>`, in increasing step order.

    Raises:
        feature_sources.ModelPathError: if `path` is not a workdir with checkpoints.
    """
    from tf3dgan import checkpointing

    workdir = _workdir(path)
    if not (workdir / checkpointing.CONFIG_FILE).is_file():
        raise feature_sources.ModelPathError(
            f"--select_checkpoint needs a training workdir (with {checkpointing.CONFIG_FILE} and "
            f"checkpoints/), but {path} is not one; pass the workdir, or drop --select_checkpoint "
            "to evaluate this model as it is.")
    config = feature_sources.read_config(workdir / checkpointing.CONFIG_FILE)
    folder = workdir / "checkpoints"
    found = []
    for index_file in folder.glob("ckpt-*.index") if folder.is_dir() else ():
        match = CHECKPOINT_PATTERN.match(index_file.name)
        if match:
            found.append((int(match.group(1)), str(folder / f"ckpt-{match.group(1)}")))
    if not found:
        raise feature_sources.ModelPathError(
            f"The workdir {workdir} has no checkpoint (ckpt-<step>.index) in {folder}; train first "
            f"(python -m pipelines.train --workdir {workdir}).")
    return config, sorted(found)


def workdir_holdout(path: str | Path) -> holdout.Holdout | None:
    """The grids a workdir's run held away from the GAN (workdir/heldout.npz), or None.

    Raises:
        ValueError: if the file exists but is not a holdout file.
    """
    file = _workdir(path) / holdout.HOLDOUT_FILE
    return holdout.load_holdout(file) if file.is_file() else None


def best_candidate(candidates: list[dict], criterion: str = "cv_accuracy") -> dict:
    """The candidate with the best `criterion`; on a tie, the later step."""
    return max(candidates, key=lambda candidate: (candidate[criterion], candidate["step"]))


def select_checkpoint(checkpoints: list[tuple[int, str]], train_voxels: np.ndarray,
                      train_labels: np.ndarray, svm: recognition.SVMSettings, *,
                      batch_size: int = 32, held_out: holdout.Holdout | None = None) -> dict:
    """Scores every checkpoint on the training split (module docstring); chooses the best.

    Args:
        checkpoints: [(step, checkpoint prefix)] of one workdir (`workdir_checkpoints`).
        train_voxels: [N, S, S, S] training grids (the test split has no place here).
        train_labels: int [N] their labels.
        svm: The benchmark's classifier settings (grid, folds, solver, seed): the same
            folds for every checkpoint.
        batch_size: Grids per feature-extraction call.
        held_out: The run's held-out grids (`workdir_holdout`): score by held-out
            accuracy. None: by CV accuracy on the whole training split.

    Returns:
        {"rule", "criterion": "holdout_accuracy" or "cv_accuracy", "candidates": [{"step",
        "checkpoint", "c", "cv_accuracy", "cv_accuracy_per_c", "extract_seconds",
        "classifier_seconds"; with a holdout also "holdout_accuracy" and
        "holdout_mean_per_class_accuracy"}], "chosen": the chosen candidate, "seconds";
        with a holdout also "holdout": {"fraction", "seed", "held_out", "seen"}}.
        With a holdout, "cv_accuracy" is the CV accuracy on the seen shapes.

    Raises:
        feature_sources.ModelPathError: if a checkpoint cannot be restored.
        ValueError: as `recognition.choose_c` (too few samples of a class); if the
            training split holds none of the held-out grids, or only them.
    """
    started = time.perf_counter()
    held = np.zeros(len(train_labels), bool) if held_out is None else held_out.mask(train_voxels)
    if held_out is not None and not 0 < held.sum() < len(held):
        raise ValueError(
            f"{int(held.sum())} of the {len(held)} training grids are among the run's "
            f"{len(held_out.hashes)} held-out grids ({holdout.HOLDOUT_FILE}); the benchmark must read "
            "the data the run trained on: pass the run's --data, --data_path and --classes.")
    if held_out is None:
        criterion = "cv_accuracy"
        rule = ("best CV accuracy on the training split (the benchmark's folds and C grid); "
                "ties to the later step; the test split is not read")
        scoring = f"scored by {svm.cv_folds}-fold CV on the training split ({len(train_labels)} shapes)"
    else:
        criterion = "holdout_accuracy"
        rule = ("best accuracy on the training grids held away from the GAN, of the SVM fitted on "
                "the grids it saw (C by the benchmark's CV there); ties to the later step; the "
                "test split is not read")
        scoring = (f"each an SVM fitted on the {int((~held).sum())} shapes the GAN saw and scored "
                   f"on the {int(held.sum())} held out")
    note(f"Checkpoint selection: {len(checkpoints)} checkpoints, {scoring}")
    labels = np.unique(train_labels)
    candidates = []
    for number, (step, prefix) in enumerate(checkpoints, start=1):
        source = feature_sources.open_model(prefix)
        features, extract_seconds = feature_sources.extract_features(
            source, train_voxels, batch_size=batch_size,
            label=f"features [step {step}, {number}/{len(checkpoints)}] train")
        classifier_started = time.perf_counter()
        if held_out is None:
            result = recognition.choose_c(features, train_labels, svm)
        else:
            result = recognition.evaluate_features(features[~held], train_labels[~held], features[held],
                                                   train_labels[held], svm, labels=labels)
        candidate = {
            "step": step, "checkpoint": prefix, "c": result["c"],
            "cv_accuracy": result["cv_accuracy"][result["c"]],
            "cv_accuracy_per_c": {f"{c:g}": value for c, value in result["cv_accuracy"].items()},
            "extract_seconds": extract_seconds,
            "classifier_seconds": time.perf_counter() - classifier_started}
        if held_out is not None:
            candidate.update(holdout_accuracy=result["accuracy"],
                             holdout_mean_per_class_accuracy=result["mean_per_class_accuracy"])
        candidates.append(candidate)
        note(f"Checkpoint selection: step {step}: {criterion.replace('_', ' ')} "
             f"{candidate[criterion]:.4f} at C={result['c']:g}")
    chosen = best_candidate(candidates, criterion)
    note(f"Checkpoint selection: step {chosen['step']} chosen "
         f"({criterion.replace('_', ' ')} {chosen[criterion]:.4f})")
    selection = {"rule": rule, "criterion": criterion, "candidates": candidates, "chosen": chosen,
                 "seconds": time.perf_counter() - started}
    if held_out is not None:
        selection["holdout"] = {"fraction": held_out.fraction, "seed": held_out.seed,
                                "held_out": int(held.sum()), "seen": int((~held).sum())}
    return selection


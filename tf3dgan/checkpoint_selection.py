"""Choosing a training run's checkpoint for the recognition benchmark, on the training split alone.

A GAN's features do not improve monotonically: on ModelNet10 neighbouring checkpoints
of one run differ by about a point of test accuracy. Picking the checkpoint with the
best test accuracy would report a number tuned on the test set. Here every checkpoint
of a workdir is scored by the benchmark's own cross-validation (`recognition.choose_c`:
the linear SVM, C from the grid, stratified folds) on the training split, and the
checkpoint with the best CV accuracy is chosen; ties go to the later step (the longer
trained model). The test split is never loaded: `select_checkpoint` reads only the
training split, so the choice cannot depend on it.

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
from tf3dgan.progress import note

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.index$")


def workdir_checkpoints(path: str | Path):
    """A training workdir's (or its checkpoints/ folder's) config and checkpoints.

    Returns:
        (ExperimentConfig, [(step, checkpoint prefix)]): the step read from the prefix
        `ckpt-<step>`, in increasing step order.

    Raises:
        feature_sources.ModelPathError: if `path` is not a workdir with checkpoints.
    """
    from tf3dgan import checkpointing

    path = Path(path)
    workdir = path.parent if path.name == "checkpoints" else path
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


def best_candidate(candidates: list[dict]) -> dict:
    """The candidate with the best CV accuracy; on a tie, the later step."""
    return max(candidates, key=lambda candidate: (candidate["cv_accuracy"], candidate["step"]))


def select_checkpoint(checkpoints: list[tuple[int, str]], train_voxels: np.ndarray,
                      train_labels: np.ndarray, svm: recognition.SVMSettings, *,
                      batch_size: int = 32) -> dict:
    """Scores every checkpoint by CV on the training split; chooses the best.

    Args:
        checkpoints: [(step, checkpoint prefix)] of one workdir (`workdir_checkpoints`).
        train_voxels: [N, S, S, S] training grids (the test split has no place here).
        train_labels: int [N] their labels.
        svm: The benchmark's classifier settings (grid, folds, solver, seed): the same
            folds for every checkpoint.
        batch_size: Grids per feature-extraction call.

    Returns:
        {"rule", "candidates": [{"step", "checkpoint", "c", "cv_accuracy",
        "cv_accuracy_per_c", "extract_seconds", "classifier_seconds"}], "chosen": the
        chosen candidate, "seconds"}.

    Raises:
        feature_sources.ModelPathError: if a checkpoint cannot be restored.
        ValueError: as `recognition.choose_c` (too few samples of a class).
    """
    started = time.perf_counter()
    note(f"Checkpoint selection: {len(checkpoints)} checkpoints, scored by "
         f"{svm.cv_folds}-fold CV on the training split ({len(train_labels)} shapes)")
    candidates = []
    for number, (step, prefix) in enumerate(checkpoints, start=1):
        source = feature_sources.open_model(prefix)
        features, extract_seconds = feature_sources.extract_features(
            source, train_voxels, batch_size=batch_size,
            label=f"features [step {step}, {number}/{len(checkpoints)}] train")
        cv = recognition.choose_c(features, train_labels, svm)
        candidates.append({
            "step": step, "checkpoint": prefix, "c": cv["c"], "cv_accuracy": cv["cv_accuracy"][cv["c"]],
            "cv_accuracy_per_c": {f"{c:g}": value for c, value in cv["cv_accuracy"].items()},
            "extract_seconds": extract_seconds, "classifier_seconds": cv["seconds"]})
        note(f"Checkpoint selection: step {step}: CV accuracy {candidates[-1]['cv_accuracy']:.4f} "
             f"at C={cv['c']:g}")
    chosen = best_candidate(candidates)
    note(f"Checkpoint selection: step {chosen['step']} chosen (CV accuracy {chosen['cv_accuracy']:.4f})")
    return {"rule": "best CV accuracy on the training split (the benchmark's folds and C grid); "
                    "ties to the later step; the test split is not read",
            "candidates": candidates, "chosen": chosen, "seconds": time.perf_counter() - started}


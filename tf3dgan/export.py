"""SavedModel export in TF Serving's layout: <model_base_path>/<version>/."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf


def export_generator(generator, model_base_path: str | os.PathLike, version: int) -> Path:
    """Writes the generator as a SavedModel at `model_base_path/version`, atomically.

    Signature `serving_default`: input `z` float32 [batch, latent_dim] ->
    output `voxels` float32 [batch, R, R, R], occupancy probabilities; BatchNorm
    in inference mode. The model is written beside the target and renamed into
    place, so a server watching `model_base_path` never loads half a model.

    Returns:
        The version directory.

    Raises:
        ValueError: if `version` is not a positive integer.
        FileExistsError: if that version already exists.
    """
    if not isinstance(version, int) or version <= 0:
        raise ValueError(f"version must be a positive integer (TF Serving's layout), received {version!r}.")
    base = Path(model_base_path)
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"{target} already exists; pick another --version.")
    base.mkdir(parents=True, exist_ok=True)

    @tf.function(input_signature=[tf.TensorSpec([None, generator.latent_dim], tf.float32, name="z")])
    def generate(z):
        return {"voxels": tf.cast(generator(z, training=False), tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serving_default", generate)
    # A hidden name: TF Serving only loads directories named by an integer.
    staging = Path(tempfile.mkdtemp(prefix=f".export-{version}-", dir=base))
    try:
        archive.write_out(str(staging / "model"), verbose=False)
        os.rename(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

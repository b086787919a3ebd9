"""train(): the whole 3D-GAN or 3D-VAE-GAN training run, from config to SavedModel.

`config.model.model` picks the model: "gan" (`GAN3D`, trained on voxel grids) or
"vae_gan" (`VAEGAN3D`, trained on (image, shape) pairs). Both share everything
else: strategies, checkpoints, resuming, callbacks and the export.

What a run leaves in its workdir:
    config.json           the experiment config the run started with (a resumed run must
                          match its model)
    config_history.jsonl  one line per start of the run: the step it started at and its
                          settings (a resumed run may change those of training and data)
    heldout.npz           (with holdout_fraction) the training grids kept away from the GAN,
                          on which tf3dgan.evaluate --select_checkpoint chooses a checkpoint
    pairs.npz             (vae_gan, from a dataset) the rendered (image, shape) pairs, so
                          that a resumed run does not render them again
    checkpoints/          a checkpoint every epoch (steps_per_epoch steps) and at the end
    logs/                 TensorBoard scalars, sample images and meshes, and (with
                          metrics_every_steps) the generation quality metrics
    samples/              a PNG grid of samples every epoch, and final.png
    export/<step>/        the SavedModel (every signature of tf3dgan.signatures) in
                          TF Serving's layout, with a model card and warm-up requests

Running the same command again resumes from the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf3dgan import callbacks as tf3dgan_callbacks
from tf3dgan import checkpointing, distribute, export, generation_callbacks
from tf3dgan.config import ExperimentConfig
from tf3dgan.data import holdout, pipeline, registry
from tf3dgan.models.builders import build_model

logger = logging.getLogger(__name__)

PAIRS_FILE = "pairs.npz"
# --data names that are (image, shape) pairs already (vae_gan only): an .npz written by
# tf3dgan.data.image_pairs.save_pairs (python -m pipelines.render_pairs), or a folder of
# users' pictures and shapes with a manifest.csv.
PAIR_SOURCES = ("pairs", "pair_folder")


@dataclasses.dataclass
class TrainResult:
    """What a finished run produced."""

    gan: object  # the trained GAN3D or VAEGAN3D
    step: int
    export_path: Path | None
    samples_path: Path | None
    history: dict
    seconds: float


def train(config: ExperimentConfig, workdir: str | Path, *, strategy=None,
          verbose: int | str = "auto", extra_callbacks=()) -> TrainResult:
    """Trains (or resumes) a 3D-GAN or 3D-VAE-GAN as `config` says, writing everything to `workdir`.

    A fresh 3D-VAE-GAN run with `config.train.init_from` set starts from that
    3D-GAN's generator and discriminator weights.

    Args:
        config: The experiment.
        workdir: Where checkpoints, logs, samples and the export go.
        strategy: A tf.distribute strategy; by default made from
            `config.train.strategy` (with the CPU split first if asked).
        verbose: Keras progress bar setting.
        extra_callbacks: More Keras callbacks.

    Returns:
        A `TrainResult`.

    Raises:
        CheckpointMismatchError: the workdir holds another architecture.
        CheckpointUnreadableError: the workdir holds checkpoints, but none can be read.
        TrainingDivergedError: a loss or weight became NaN/inf (nothing saved).
        ValueError, FileNotFoundError: bad config or data.
    """
    started = time.time()
    workdir = Path(workdir)
    train_config = config.train
    checkpointing.check_workdir_config(workdir, config)

    if strategy is None:
        distribute.split_cpu(train_config.cpu_devices)
        strategy = distribute.make_strategy(train_config.strategy)
    keras.config.set_dtype_policy(train_config.precision)
    chief = distribute.is_chief(strategy)
    if chief:
        removed = (checkpointing.remove_stale_staging(workdir / "checkpoints")
                   + export.remove_stale_staging(workdir / "export"))
        if removed:
            print(f"Removed what an interrupted run left: {', '.join(map(str, removed))}.", flush=True)
    replicas = strategy.num_replicas_in_sync
    if train_config.mode_seeking_weight > 0 and train_config.batch_size % (2 * replicas):
        raise ValueError(
            f"mode_seeking_weight > 0 pairs the samples of each replica's batch, but "
            f"batch_size={train_config.batch_size} over {replicas} replica(s) does not give an "
            f"even batch per replica; use a multiple of {2 * replicas}, or mode_seeking_weight=0.")

    dataset_info, pairs = _load_data(config, workdir, chief)
    logger.info("Data: %s", dataset_info.description)
    print(f"Data: {dataset_info.description}", flush=True)

    keras.utils.set_random_seed(train_config.seed)
    with strategy.scope():
        gan = build_model(config.model, train_config)
        gan.rank1_logs = distribute.is_multi_worker(strategy)

    checkpoint = checkpointing.make_checkpoint(gan)
    # Non-chief workers of a multi-worker run must join every save (it is a
    # collective), but into a scratch directory.
    checkpoint_dir = workdir / "checkpoints" if chief else workdir / f"worker_scratch_{strategy.cluster_resolver.task_id}"
    if chief:
        repaired = checkpointing.repair_state(checkpoint_dir)
        if repaired:
            print(repaired, flush=True)
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir),
                                         max_to_keep=train_config.keep_checkpoints)
    restored = checkpointing.restore_latest(manager, checkpoint, gan)
    start_step = int(gan.step_counter.numpy())
    # The optimizers' learning rates are variables and come back from the
    # checkpoint; the config of this run decides them.
    gan.g_optimizer.learning_rate = train_config.generator_learning_rate
    gan.d_optimizer.learning_rate = train_config.discriminator_learning_rate
    if config.model.model == "vae_gan":
        gan.e_optimizer.learning_rate = train_config.encoder_learning_rate
    if restored:
        print(f"Resuming from {restored} at step {start_step}.", flush=True)
        if train_config.init_from:
            print(f"init_from={train_config.init_from!r} is not used: the run resumes.", flush=True)
    elif train_config.init_from:
        source = checkpointing.load_networks(gan, train_config.init_from, config.model)
        if getattr(gan, "generator_ema", None) is not None:
            checkpointing.start_average(gan)
        print(f"Generator and discriminator start from {source}.", flush=True)
    if start_step % train_config.steps_per_epoch:
        raise checkpointing.CheckpointMismatchError(
            f"The checkpoint is at step {start_step}, which is not a multiple of "
            f"steps_per_epoch={train_config.steps_per_epoch}; resume with the steps_per_epoch "
            "the run was started with.")

    writer = tf.summary.create_file_writer(str(workdir / "logs")) if chief else None
    sample_images = tf3dgan_callbacks.SampleImages(
        gan, workdir / "samples", writer, train_config.num_sample_images)
    callbacks = [tf3dgan_callbacks.CheckpointEveryEpoch(gan, manager)]
    if chief:
        callbacks += [tf3dgan_callbacks.ScalarSummaries(gan, writer, train_config.log_every_steps),
                      sample_images,
                      generation_callbacks.SampleMeshes(gan, writer, min(4, train_config.num_sample_images))]
        if train_config.metrics_every_steps:
            # Measured on the held-out shapes when the run keeps some: a checkpoint chosen by
            # these curves is then chosen on shapes the GAN never saw.
            held_out = dataset_info.held_out_voxels
            reference = held_out if held_out is not None and len(held_out) >= 2 else dataset_info.voxels
            callbacks.append(generation_callbacks.GenerationMetricsSummaries(
                gan, writer, reference, train_config.metrics_every_steps))
    callbacks += list(extra_callbacks)

    history = {}
    dataset = (_training_dataset(config, dataset_info, pairs, start_step)
               if start_step < train_config.train_steps else None)
    if chief:
        # Only now: a start that failed before this point has no settings to record, and
        # its config.json would claim the workdir for a run that never trained.
        note = checkpointing.record_start(workdir, config, start_step, resumed=restored is not None)
        if note:
            print(note, flush=True)
    if dataset is not None:
        fit_history = gan.fit(
            dataset,
            epochs=train_config.train_steps // train_config.steps_per_epoch,
            initial_epoch=start_step // train_config.steps_per_epoch,
            steps_per_epoch=train_config.steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # the stream is already shuffled, reproducibly
            verbose=verbose,
        )
        history = {name: [float(np.mean(v)) for v in values]
                   for name, values in fit_history.history.items()}
    else:
        print(f"Already trained: step {start_step} of {train_config.train_steps}.", flush=True)

    step = int(gan.step_counter.numpy())
    export_path = samples_path = None
    if chief:
        samples_path = sample_images.write("final")
        export_dir = workdir / "export" / str(step)
        if not export_dir.exists():
            card = export.model_card(config, steps_trained=step,
                                     data_description=dataset_info.description)
            export_path = export.export_model(gan, workdir / "export", step, model_card=card)
        else:
            export_path = export_dir
        print(f"Samples: {samples_path}\nSavedModel: {export_path}", flush=True)
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    keras.config.set_dtype_policy("float32")
    return TrainResult(gan=gan, step=step, export_path=export_path, samples_path=samples_path,
                       history=history, seconds=time.time() - started)


def _load_data(config: ExperimentConfig, workdir: Path, chief: bool):
    """The training data: (a VoxelDataset of the grids, the PairSet or None).

    For "gan", the grids of `config.data`. For "vae_gan", the pairs too: read from
    --data pairs / pair_folder, or rendered from the dataset's grids and cached in
    workdir/pairs.npz (a resumed run reads them back instead of rendering again).

    Raises:
        ValueError: for a pair source with model "gan", augmentations with "vae_gan"
            (they would turn a shape away from its pictures), class filters on a pair
            source, or pairs of another image size.
        FileNotFoundError: for a missing data path.
    """
    data_config, model_config = config.data, config.model
    if model_config.model == "gan":
        if data_config.data in PAIR_SOURCES:
            raise ValueError(
                f"--data {data_config.data} holds (image, shape) pairs, which only the 3D-VAE-GAN "
                "trains on; pass --model vae_gan (e.g. --preset cpu32_vae), or a dataset of shapes.")
        dataset_info = registry.load_dataset(data_config, model_config.resolution, config.train.seed)
        return _hold_out(dataset_info, config, workdir, chief), None

    from tf3dgan.data import image_pairs

    if data_config.augment_rotate or data_config.augment_flip:
        raise ValueError(
            "augment_rotate and augment_flip turn each shape but not its pictures, so the pairs "
            "would no longer match; pass --augment_rotate false --augment_flip false with "
            "--model vae_gan (the pictures already show each shape from several viewpoints).")
    if data_config.data in PAIR_SOURCES:
        if data_config.classes:
            raise ValueError(
                f"classes={data_config.classes!r} cannot filter --data {data_config.data}; pass "
                "--classes '' and make the pairs of the classes you want (python -m "
                "pipelines.render_pairs).")
        if data_config.data == "pairs":
            pairs = image_pairs.load_pairs(data_config.data_path)
        else:
            pairs = image_pairs.load_pair_folder(
                data_config.data_path, model_config.resolution, model_config.image_size)
        if pairs.image_size != model_config.image_size or pairs.images.shape[2] != model_config.image_size:
            raise ValueError(
                f"The pairs in {data_config.data_path} have {pairs.images.shape[1]}x"
                f"{pairs.images.shape[2]} pictures but the encoder reads {model_config.image_size}x"
                f"{model_config.image_size}; render them again with --image_size "
                f"{model_config.image_size}, or train with --image_size {pairs.images.shape[1]}.")
    else:
        dataset_info = registry.load_dataset(data_config, model_config.resolution, config.train.seed)
        pairs = _rendered_pairs(config, dataset_info, workdir / PAIRS_FILE, chief)
    pipeline.check_upsampling(pairs.resolution, model_config.resolution)
    dataset_info = registry.VoxelDataset(voxels=pairs.voxels, labels=pairs.labels,
                                         class_names=pairs.class_names,
                                         description=pairs.description)
    return dataset_info, pairs


def _hold_out(dataset_info, config: ExperimentConfig, workdir: Path, chief: bool):
    """The dataset without the grids held out for checkpoint selection (`tf3dgan.data.holdout`).

    A fresh run chooses them and writes workdir/heldout.npz; a resumed run must hold out
    the same ones, or the GAN would see shapes the selection counts as unseen.

    Raises:
        CheckpointMismatchError: the workdir's checkpoints were trained with another holdout.
    """
    fraction = config.data.holdout_fraction
    path = workdir / holdout.HOLDOUT_FILE
    stored = holdout.load_holdout(path) if path.exists() else None
    started = any((workdir / "checkpoints").glob("ckpt-*.index"))
    if not fraction:
        if stored is not None and started:
            raise checkpointing.CheckpointMismatchError(
                f"The workdir {workdir} was trained with holdout_fraction={stored.fraction} "
                f"({path}); resume it with --holdout_fraction {stored.fraction}, or the GAN would "
                "train on the held-out shapes.")
        if stored is not None and chief:
            path.unlink()  # left by a run stopped before its first checkpoint: no longer true
        return dataset_info
    chosen = holdout.choose_holdout(dataset_info.voxels, fraction, config.train.seed)
    if started and (stored is None or not np.array_equal(stored.hashes, chosen.hashes)):
        recorded = f"holdout_fraction={stored.fraction}, seed {stored.seed}" if stored else "no holdout"
        raise checkpointing.CheckpointMismatchError(
            f"The workdir {workdir} was trained with {recorded}, but this run holds out other "
            f"grids (holdout_fraction={fraction}, seed {config.train.seed}, on {dataset_info.description}); "
            "resume with the run's own settings and data, or use a new --workdir.")
    if chief and (stored is None or not np.array_equal(stored.hashes, chosen.hashes)):
        holdout.save_holdout(chosen, path)
    held = chosen.mask(dataset_info.voxels)
    return registry.VoxelDataset(
        voxels=dataset_info.voxels[~held], labels=dataset_info.labels[~held],
        class_names=dataset_info.class_names, held_out_voxels=dataset_info.voxels[held],
        description=(f"{dataset_info.description}; {int(held.sum())} grids "
                     f"({len(chosen.hashes)} distinct, holdout_fraction={fraction}) held out for "
                     f"checkpoint selection ({path.name})"))


def _rendered_pairs(config: ExperimentConfig, dataset_info, path: Path, chief: bool):
    """The dataset's grids rendered as pairs, read from `path` if it holds exactly those."""
    from tf3dgan.data import image_pairs

    views, image_size = config.data.views_per_shape, config.model.image_size
    grids = (np.asarray(dataset_info.voxels) > 0.5).astype(np.uint8)
    if path.exists():
        cached = image_pairs.load_pairs(path)
        if (cached.image_size == image_size and cached.num_pairs == len(grids) * views
                and cached.voxels.shape == grids.shape and np.array_equal(cached.voxels, grids)):
            print(f"Pairs: read {cached.num_pairs} rendered pairs from {path}.", flush=True)
            return cached
        print(f"Pairs: {path} holds other pairs ({cached.description}); rendering again.", flush=True)
    pairs = image_pairs.render_pairs(
        grids, dataset_info.labels, dataset_info.class_names, views_per_shape=views,
        image_size=image_size, seed=config.train.seed, progress=chief,
        description=dataset_info.description)
    if chief:
        image_pairs.save_pairs(pairs, path)
    return pairs


def _training_dataset(config: ExperimentConfig, dataset_info, pairs, start_step: int):
    """The endless training stream from batch `start_step`: grids (gan) or (images, grids) pairs."""
    train_config = config.train
    if pairs is None:
        return pipeline.training_dataset(
            dataset_info.voxels, train_config.batch_size, train_config.seed, start_step,
            resolution=config.model.resolution, rotate=config.data.augment_rotate,
            flip=config.data.augment_flip)
    from tf3dgan.data import image_pairs

    return image_pairs.pair_dataset(pairs, train_config.batch_size, train_config.seed, start_step,
                                    resolution=config.model.resolution)

"""Train a 3D-GAN or a 3D-VAE-GAN: python -m pipelines.train --strategy=mirrored

With no flags it trains the `cpu32` preset on the embedded synthetic shapes
(about 15 minutes on two CPU cores). Running the same command again resumes.

--model vae_gan trains the 3D-VAE-GAN (an image encoder with the 3D-GAN) on
(image, shape) pairs: the dataset's shapes rendered from --views_per_shape
viewpoints at --image_size (cached in the workdir's pairs.npz), or --data pairs
(an .npz from python -m pipelines.render_pairs), or --data pair_folder (your own
pictures and shapes, listed in a manifest.csv). It needs --prior standard_normal;
the presets cpu32_vae, paper64_vae and smoke_vae set everything.

Examples:
  python -m pipelines.train --strategy=mirrored
  python -m pipelines.train --preset paper64 --workdir runs/paper64 --strategy mirrored
  python -m pipelines.train --data modelnet10 --data_path modelnet10_32.npz --classes chair
  python -m pipelines.train --data cache --data_path ModelNet10_voxels32 --augment_rotate true
  python -m pipelines.train --model vae_gan --preset cpu32_vae --workdir runs/vae \\
      --data modelnet10 --data_path modelnet10_32.npz --init_from runs/default
  python -m pipelines.train --model vae_gan --preset cpu32_vae --data pairs --data_path pairs_train.npz
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines import flags
from tf3dgan import config as config_lib


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=config_lib.DEFAULT_PRESET,
                        help=f"Named preset: {', '.join(sorted(config_lib.PRESETS))} "
                             f"(default {config_lib.DEFAULT_PRESET}).")
    parser.add_argument("--workdir", default="runs/default",
                        help="Where checkpoints, logs, samples and the SavedModel go (default runs/default).")
    flags.add_config_flags(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = flags.config_from_flags(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Imported here so that --help and flag errors do not wait for TensorFlow.
    from tf3dgan import training
    from tf3dgan.callbacks import TrainingDivergedError
    from tf3dgan.checkpointing import CheckpointMismatchError, CheckpointUnreadableError

    try:
        result = training.train(config, args.workdir)
    except (ValueError, FileNotFoundError, CheckpointMismatchError, CheckpointUnreadableError,
            TrainingDivergedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Trained {result.step} steps in {result.seconds:.0f} s.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

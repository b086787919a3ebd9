"""Voxelize a shape collection once into a cache that training reads: python -m pipelines.prepare

Reads a ModelNet10/40 folder or .zip (CLASS/train|test/*.off), a ShapeNet voxel folder
(SYNSET/MODEL_ID/.../*.binvox) or a flat folder of one class (meshes or .binvox), in
parallel over the cores, into TFRecord shards and a manifest.json (counts per class and
split, settings, and every dropped file with its reason). Running the same command again
skips the shards that are done. Then train with --data cache --data_path OUTPUT.

Examples:
  python -m pipelines.prepare --input ModelNet10.zip --output ModelNet10_voxels32 --resolution 32
  python -m pipelines.prepare --input ShapeNetCore.v2 --resolution 64 --classes chair,table
  python -m pipelines.train --data cache --data_path ModelNet10_voxels32 --classes chair
"""

from __future__ import annotations

import argparse
import logging
import sys

# Only light imports here (no TensorFlow): the worker processes import this module again.
from tf3dgan.data.layouts import LAYOUTS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.prepare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True,
                        help="The dataset: a folder or .zip in one of the layouts.")
    parser.add_argument("--output", default=None,
                        help="The cache directory (default: beside the input, "
                             "INPUT_voxelsR, which --data LAYOUT --data_path INPUT reads).")
    parser.add_argument("--resolution", type=int, required=True, choices=(16, 32, 64),
                        help="Grid edge R: 32 or 64 (16 for quick checks).")
    parser.add_argument("--data", default=None, choices=LAYOUTS,
                        help="The input's layout (default: detected from its file names).")
    parser.add_argument("--classes", nargs="+", default=[],
                        help="Classes to keep, as names or ShapeNet synset ids, separated by "
                             "spaces or commas (default: all).")
    parser.add_argument("--fill", default="solid", choices=("solid", "surface"),
                        help="Voxelize meshes solid (filled interior) or as surfaces (default "
                             "solid); also picks ShapeNet's *.solid.binvox or *.surface.binvox.")
    parser.add_argument("--up_axis", default=None, choices=("x", "y", "z"),
                        help="The shapes' up axis, rotated onto z (default: z for modelnet and "
                             "folder, y for shapenet_binvox).")
    parser.add_argument("--workers", type=int, default=None,
                        help="Worker processes (default: every core this process may use).")
    parser.add_argument("--shard_size", type=int, default=256,
                        help="Shapes per TFRecord shard, the unit of resuming (default 256).")
    parser.add_argument("--packing", default="bits", choices=("bits", "raw"),
                        help="Store grids bit-packed (R^3/8 bytes, default) or a byte per voxel.")
    parser.add_argument("--no_progress", action="store_true", help="Hide the progress bar.")
    parser.add_argument("--allow_dropped", action="store_true",
                        help="Complete the cache even if more than half of the shape files, or "
                             "every file of a split, could not be used (default: stop with an "
                             "error that names them).")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    classes = [name.strip() for value in args.classes for name in value.split(",") if name.strip()]
    # Imported here so that --help, flag errors and the worker processes do not wait for
    # TensorFlow.
    from tf3dgan.data import prepare

    try:
        result = prepare.prepare_cache(
            args.input, args.output, args.resolution, layout=args.data, classes=classes,
            fill=args.fill, up_axis=args.up_axis, workers=args.workers,
            shard_size=args.shard_size, packing=args.packing, progress=not args.no_progress,
            allow_dropped=args.allow_dropped)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    manifest = result.manifest
    for split, per_class in manifest["counts"].items():
        counts = ", ".join(f"{name} {count}" for name, count in per_class.items())
        print(f"{split}: {sum(per_class.values())} shapes ({counts})")
    run = manifest["last_run"]
    rate = f", {run['files_per_second']:.1f} files/s" if run["files_per_second"] else ""
    print(f"Read {result.files_read} files with {run['workers']} worker(s) in "
          f"{run['seconds']:.1f} s{rate}; {result.shards_skipped} shard(s) were already done.")
    manifest_path = f"{result.output}/manifest.json"
    print(f"Dropped {len(manifest['dropped'])} file(s), ignored {len(manifest['ignored'])}: "
          f"reasons in {manifest_path}")
    for line in prepare.dropped_report(manifest["dropped"], manifest_path):
        print(f"  {line}")
    print(f"Train with: python -m pipelines.train --data cache --data_path {result.output} "
          f"--resolution {manifest['resolution']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

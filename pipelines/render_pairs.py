"""Make (image, shape) training pairs for the 3D-VAE-GAN: python -m pipelines.render_pairs

Three sources, one output (an .npz that tf3dgan.data.image_pairs.load_pairs reads):

  --data NAME [--data_path ...]   a dataset's voxel grids (as for training: modelnet10, npz,
                                  cache, tfds, synthetic ...), each rendered from
                                  --views_per_shape seeded viewpoints with varied lighting;
  --mesh_folder DIR               meshes (.off/.obj/.stl/... anywhere under DIR) rendered
                                  directly, paired with their voxelization at --resolution;
                                  meshes in DIR/CLASS/... get the label CLASS;
  --pair_folder DIR               your own pictures and shapes, listed in DIR/manifest.csv
                                  (columns image,shape[,label]; see tf3dgan.data.pair_folder).

Beside the output it writes a contact sheet (OUT.contact.png): pictures next to a render of
the shape they are paired with, to look at what was made.

Examples:
  python -m pipelines.render_pairs --data modelnet10 --data_path ../shared/data/modelnet10_32.npz \\
      --split train --views_per_shape 4 --image_size 64 --out pairs_train.npz
  python -m pipelines.render_pairs --pair_folder my_photos --resolution 32 --image_size 64 \\
      --out my_pairs.npz

Exit codes: 0 done; 2 flags, data or an --out that cannot be used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from tf3dgan.argument_types import non_negative_int, positive_int


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.render_pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="Dataset name (modelnet10, npz, cache, tfds, synthetic ...).")
    source.add_argument("--mesh_folder", help="A folder of meshes to render directly.")
    source.add_argument("--pair_folder", help="A folder with manifest.csv listing your own pairs.")
    parser.add_argument("--data_path", default="", help="With --data: the dataset's file or folder.")
    parser.add_argument("--classes", default="", help="With --data: comma-separated classes (default: all).")
    parser.add_argument("--split", default="train", help="With --data: the split (default %(default)s).")
    parser.add_argument("--synthetic_shapes_per_class", type=positive_int, default=40,
                        help="With --data synthetic: shapes per class (default %(default)s).")
    parser.add_argument("--resolution", type=positive_int, default=32,
                        help="Grid edge: of meshes and folder shapes; with --data, the model's "
                             "(the data's must divide it; grids keep the data's own). Default %(default)s.")
    parser.add_argument("--views_per_shape", type=positive_int, default=4,
                        help="Rendered pictures per shape (default %(default)s).")
    parser.add_argument("--image_size", type=positive_int, default=64,
                        help="Side of the pictures in pixels (default %(default)s; the paper uses 256).")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="Fixes the viewpoints and lights (default %(default)s).")
    parser.add_argument("--up_axis", default="z", choices=("x", "y", "z"),
                        help="Up axis of meshes and folder shapes (default %(default)s).")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="Rendering processes (default: every core this process may use).")
    parser.add_argument("--out", required=True, help="The .npz file to write.")
    parser.add_argument("--overwrite", action="store_true", help="Replace --out if it exists.")
    parser.add_argument("--contact_pairs", type=non_negative_int, default=24,
                        help="Pairs shown on the contact sheet (default %(default)s; 0 writes none).")
    parser.add_argument("--no_progress", action="store_true", help="Hide the progress line.")
    return parser.parse_args(argv)


def _mesh_files(folder: str) -> tuple[list[str], list[int], tuple[str, ...]]:
    """Mesh files under ``folder``, their labels (first sub-folder) and the class names."""
    import trimesh

    formats = set(trimesh.available_formats())
    found = []
    for root, directories, files in os.walk(folder):
        directories.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower().lstrip(".") in formats:
                found.append(os.path.join(root, name))
    if not found:
        raise ValueError(f"--mesh_folder {folder}: no mesh files (.off, .obj, .stl, .ply, .glb, "
                         "...) in it or its sub-folders.")
    classes = [os.path.relpath(path, folder).split(os.sep)[0] if os.sep in
               os.path.relpath(path, folder) else "unlabelled" for path in found]
    class_names = tuple(sorted(set(classes)))
    return found, [class_names.index(name) for name in classes], class_names


def run(args: argparse.Namespace):
    """Makes, saves and summarizes the pairs; returns (PairSet, contact sheet path or None).

    Raises:
        ValueError, FileNotFoundError, FileExistsError: for flags or data that cannot be used.
    """
    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"--out {args.out} exists; pass --overwrite to replace it, or "
                              "another --out.")
    from tf3dgan.data import image_pairs

    workers = args.workers or len(os.sched_getaffinity(0))
    started = time.perf_counter()
    if args.data:
        from tf3dgan.config import DataConfig
        from tf3dgan.data import registry

        config = DataConfig(data=args.data, data_path=args.data_path, classes=args.classes,
                            split=args.split,
                            synthetic_shapes_per_class=args.synthetic_shapes_per_class)
        data = registry.load_dataset(config, args.resolution, args.seed)
        print(f"Data: {data.description}", flush=True)
        pairs = image_pairs.render_pairs(
            data.voxels, data.labels, data.class_names, views_per_shape=args.views_per_shape,
            image_size=args.image_size, seed=args.seed, progress=not args.no_progress,
            workers=workers,
            description=" ".join(filter(None, ("--data", args.data, args.data_path, f"[{args.split}]"))))
    elif args.mesh_folder:
        paths, labels, class_names = _mesh_files(args.mesh_folder)
        pairs = image_pairs.render_mesh_pairs(
            paths, labels, class_names, resolution=args.resolution,
            views_per_shape=args.views_per_shape, image_size=args.image_size, seed=args.seed,
            up_axis=args.up_axis, progress=not args.no_progress, workers=workers)
    else:
        pairs = image_pairs.load_pair_folder(args.pair_folder, args.resolution, args.image_size,
                                             up_axis=args.up_axis)
    seconds = time.perf_counter() - started
    image_pairs.save_pairs(pairs, args.out)
    sheet_path = None
    if args.contact_pairs:
        from tf3dgan.data import pair_contact_sheet, render

        sheet_path = contact_sheet_path(args.out)
        render.save_png(pair_contact_sheet.contact_sheet(pairs, args.contact_pairs), sheet_path)
    _print_summary(pairs, args.out, seconds, sheet_path)
    return pairs, sheet_path


def contact_sheet_path(out: str) -> str:
    """OUT.npz -> OUT.contact.png."""
    stem = out[:-4] if out.lower().endswith(".npz") else out
    return stem + ".contact.png"


def _print_summary(pairs, out: str, seconds: float, sheet_path: str | None) -> None:
    import numpy as np

    per_class = np.bincount(pairs.labels[pairs.shape_index], minlength=len(pairs.class_names))
    counts = ", ".join(f"{name} {count}" for name, count in zip(pairs.class_names, per_class))
    print(f"Pairs: {pairs.description}")
    print(f"  {pairs.num_pairs} pictures {pairs.images.shape[1]}x{pairs.images.shape[2]} of "
          f"{pairs.num_shapes} shapes at {pairs.resolution}^3 in {seconds:.1f} s; per class: {counts}")
    print(f"Wrote {out} ({os.path.getsize(out) / 2 ** 20:.1f} MiB)")
    if sheet_path:
        print(f"Contact sheet (picture | its shape): {sheet_path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

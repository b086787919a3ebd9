"""Voxelizing a collection once into a sharded cache: what ``python -m pipelines.prepare`` runs.

The files of a collection (:mod:`tf3dgan.data.layouts`) are read in parallel worker processes
(:mod:`tf3dgan.data.shape_reader`; started with "spawn", so they never inherit a TensorFlow
runtime, and import only NumPy, SciPy and trimesh) and written by this process, in order, to
the TFRecord shards of :mod:`tf3dgan.data.cache`.

Resuming. The plan (which file goes to which shard) is a pure function of the sorted file
list and the settings, and its fingerprint is in the manifest. Each shard is written under a
temporary name and renamed when complete, after its sidecar .json (its counts and dropped
files); a shard whose .tfrecord exists under its final name is done, and a re-run skips it.
A re-run with other settings or other input files refuses to mix them into the same
directory.

Bad input. A file that cannot be read or voxelized (:class:`UnusableShapeError`, read
errors) is dropped and recorded in the manifest with its reason; the run goes on. An empty
class folder stops the run before any work, and so does a collection in which nothing at all
is usable, after the work, with the reasons of the first failures in the message. A run that
dropped more than half of its files, or every file of a split, also ends in an error and
leaves the cache incomplete, unless ``allow_dropped`` (``--allow_dropped``) accepts the
loss: a dataset that lost most of its shapes is usually a reader or a download gone wrong,
not one to train on without being told.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from typing import Iterator, Sequence

from tf3dgan.data import cache, layouts, shape_reader
from tf3dgan.data.binvox import check_up_axis
from tf3dgan.data.voxelize import FILL_MODES

logger = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 256

# How many dropped files a report names; the manifest lists them all.
DROPPED_SHOWN = 20


@dataclasses.dataclass(frozen=True)
class PrepareResult:
    """What a run of :func:`prepare_cache` did.

    Attributes:
        output: The cache directory.
        manifest: The manifest written (``complete`` is true).
        files_read: Shape files read in this run (0 when every shard was already done).
        shards_skipped: Shards that an earlier run had completed.
        seconds: Wall time of the reading and writing, worker start-up included.
    """

    output: str
    manifest: dict
    files_read: int
    shards_skipped: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class _Shard:
    name: str
    split: str
    indices: tuple[int, ...]


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def prepare_cache(input_path: str | os.PathLike, output_dir: str | os.PathLike | None = None,
                  resolution: int = 32, *, layout: str | None = None,
                  classes: Sequence[str] = (), fill: str = "solid", up_axis: str | None = None,
                  workers: int | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                  packing: str = "bits", progress: bool = True,
                  allow_dropped: bool = False) -> PrepareResult:
    """Voxelize (or read) every shape of a collection into a cache directory, resumably.

    Args:
        input_path: A folder or .zip in one of :data:`tf3dgan.data.layouts.LAYOUTS`.
        output_dir: The cache directory; default :func:`tf3dgan.data.cache.default_cache_dir`.
        resolution: Edge R of the grids (32 or 64; 16 for tests).
        layout: The input's layout; None detects it.
        classes: Class names (or ShapeNet synset ids) to keep; empty keeps all.
        fill: "solid" or "surface" voxelization of meshes.
        up_axis: The shapes' up axis; None takes the layout's (z for ModelNet and flat
            folders, y for ShapeNet).
        workers: Worker processes; None uses every core this process may run on; 1 reads
            in this process. Workers are started with "spawn", which imports the caller's
            main module again: a script that calls this must do so under
            ``if __name__ == "__main__":``.
        shard_size: Shapes per shard (the unit of resuming).
        packing: "bits" (R^3 / 8 bytes per grid) or "raw" (a byte per voxel).
        progress: Show a progress bar on stderr (tqdm when installed).
        allow_dropped: Complete the cache even when more than half of the shape files, or
            every file of a split, were dropped (by default that is an error).

    Returns:
        A :class:`PrepareResult`.

    Raises:
        FileNotFoundError: if the input does not exist.
        ValueError: for bad arguments; an input that matches no layout; an unknown class; an
            empty class folder; an output that holds something else or a cache made with
            other settings or files; when no shape at all is usable; or, unless
            ``allow_dropped``, when more than half of the files or all of a split's files
            were dropped (the message names them, and the cache stays incomplete).
        RuntimeError: if a worker process dies (the run can be resumed).
    """
    started = time.perf_counter()
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer such as 32 or 64, got {resolution!r}.")
    if fill not in FILL_MODES:
        raise ValueError(f"fill must be one of {FILL_MODES}, got {fill!r}.")
    if packing not in cache.PACKINGS:
        raise ValueError(f"packing must be one of {cache.PACKINGS}, got {packing!r}.")
    for name, value in (("workers", workers), ("shard_size", shard_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    collection = layouts.select_classes(layouts.scan(input_path, layout, fill=fill), classes)
    up_axis = check_up_axis(up_axis or layouts.default_up_axis(collection.layout))
    output = os.fspath(output_dir) if output_dir else cache.default_cache_dir(input_path, resolution)
    files = collection.files
    shards = _plan_shards(files, shard_size)
    settings = {"layout": collection.layout, "input": os.path.abspath(os.fspath(input_path)),
                "fill": fill, "up_axis": up_axis, "classes": list(collection.class_names),
                "shard_size": shard_size}
    fingerprint = hashlib.sha256(json.dumps(
        {"settings": settings, "resolution": resolution, "packing": packing,
         "files": [[f.relative, f.class_name, f.split] for f in files]},
        sort_keys=True).encode()).hexdigest()
    _claim_output(output, fingerprint)

    label_of = {name: label for label, name in enumerate(collection.class_names)}
    splits = [s for s in layouts.SPLITS
              if any(f.split == s for f in files) or any(d[2] == s for d in collection.dropped)]
    found = {split: {name: 0 for name in collection.class_names} for split in splits}
    for shape in files:
        found[shape.split][shape.class_name] += 1
    for _, class_name, split, _ in collection.dropped:
        found[split][class_name] += 1
    manifest = {
        "format": cache.CACHE_FORMAT, "version": cache.CACHE_VERSION, "complete": False,
        "resolution": resolution, "packing": packing, "settings": settings,
        "fingerprint": fingerprint, "class_names": list(collection.class_names),
        "class_ids": list(collection.class_ids), "found": found,
        "ignored": [{"file": name, "reason": reason} for name, reason in collection.ignored],
        "shards": [{"file": shard.name, "split": shard.split} for shard in shards],
    }
    cache.write_json(os.path.join(output, cache.MANIFEST_NAME), manifest)

    pending = [s for s in shards if not os.path.isfile(os.path.join(output, s.name))]
    items = [(index, files[index]) for shard in pending for index in shard.indices]
    reader = functools.partial(
        shape_reader.read_packed, shape_reader.ReadSettings(resolution, fill, up_axis))
    workers = min(workers or default_workers(), max(len(items), 1))
    read_started = time.perf_counter()
    with _progress_bar(len(files), len(files) - len(items), progress) as bar, \
            _mapped(reader, items, workers) as results:
        for shard in pending:
            outcomes = []
            for _ in shard.indices:
                outcomes.append(next(results))
                bar.update(1)
            _write_shard(output, shard, files, outcomes, label_of, resolution, packing)
    read_seconds = time.perf_counter() - read_started

    manifest.update(_summary(output, shards, collection, splits))
    manifest["last_run"] = {"workers": workers, "files_read": len(items),
                            "seconds": round(read_seconds, 3),
                            "files_per_second": round(len(items) / read_seconds, 3) if items else None}
    usable = sum(sum(per_class.values()) for per_class in manifest["counts"].values())
    if usable == 0:
        cache.write_json(os.path.join(output, cache.MANIFEST_NAME), manifest)
        reasons = "; ".join(f"{d['file']}: {d['reason']}" for d in manifest["dropped"][:3])
        raise ValueError(
            f"Nothing usable in {os.fspath(input_path)!r}: all {len(manifest['dropped'])} shape "
            f"files were dropped ({reasons}{'; ...' if len(manifest['dropped']) > 3 else ''}). "
            f"Every file and its reason is in {os.path.join(output, cache.MANIFEST_NAME)}.")
    losses = _losses(manifest, found)
    if losses and not allow_dropped:
        manifest_path = os.path.join(output, cache.MANIFEST_NAME)
        cache.write_json(manifest_path, manifest)
        listed = "\n".join(f"  {line}" for line in dropped_report(manifest["dropped"],
                                                                  manifest_path))
        raise ValueError(
            f"Too much of {os.fspath(input_path)!r} could not be used: {'; '.join(losses)}. "
            f"The dropped files:\n{listed}\nThe cache {output!r} is left incomplete. Fix or "
            f"remove those files and prepare again (into a new --output, or after deleting "
            f"{output!r}), or run the same command with --allow_dropped (allow_dropped=True) "
            "to accept the loss; the shards already written are reused.")
    manifest["complete"] = True
    cache.write_json(os.path.join(output, cache.MANIFEST_NAME), manifest)
    for split, per_class in manifest["counts"].items():
        for class_name, count in per_class.items():
            if count == 0 and found[split][class_name]:
                logger.warning("%s: every %s file of class %r was dropped (see %s).",
                               input_path, split, class_name, cache.MANIFEST_NAME)
    return PrepareResult(output, manifest, len(items), len(shards) - len(pending),
                         time.perf_counter() - started)


def dropped_report(dropped: Sequence[dict], manifest_path: str,
                   limit: int = DROPPED_SHOWN) -> list[str]:
    """Lines that name dropped files with their reasons, bounded for huge drops.

    Args:
        dropped: The manifest's ``dropped`` entries (dicts with "file" and "reason").
        manifest_path: The manifest that lists them all, named when some are left out.
        limit: How many files to name (>= 0).

    Returns:
        ``"FILE: REASON"`` for each of the first ``limit`` entries, then
        ``"... and N more, see MANIFEST_PATH"`` if there are more; no lines for none.

    Raises:
        ValueError: if ``limit`` is not an integer >= 0.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be an integer >= 0, got {limit!r}.")
    lines = [f"{entry['file']}: {entry['reason']}" for entry in dropped[:limit]]
    if len(dropped) > limit:
        lines.append(f"... and {len(dropped) - limit} more, see {manifest_path}")
    return lines


def _losses(manifest: dict, found: dict) -> list[str]:
    """What a run dropped that must be accepted with allow_dropped, in words; [] if nothing."""
    total = sum(sum(per_class.values()) for per_class in found.values())
    dropped = len(manifest["dropped"])
    losses = []
    if 2 * dropped > total:
        losses.append(f"{dropped} of its {total} shape files were dropped, more than half")
    for split, per_class in manifest["counts"].items():
        in_split = sum(found[split].values())
        if in_split and not sum(per_class.values()):
            losses.append(f"its {split} split is empty: all {in_split} of its shape files "
                          "were dropped")
    return losses


def _plan_shards(files: Sequence[layouts.ShapeFile], shard_size: int) -> list[_Shard]:
    """Consecutive runs of ``shard_size`` files of each split, named by split and number."""
    shards = []
    for split in layouts.SPLITS:
        indices = [i for i, shape in enumerate(files) if shape.split == split]
        count = math.ceil(len(indices) / shard_size)
        for number in range(count):
            shards.append(_Shard(cache.shard_name(split, number, count), split,
                                 tuple(indices[number * shard_size:(number + 1) * shard_size])))
    return shards


def _claim_output(output: str, fingerprint: str) -> None:
    """Make sure ``output`` is new, empty, or a cache of the same plan (which is resumed)."""
    if cache.is_cache(output):
        previous = cache.read_manifest(output)
        if previous.get("fingerprint") != fingerprint:
            settings = previous.get("settings", {})
            raise ValueError(
                f"{output!r} holds a cache prepared from other files or with other settings "
                f"(input {settings.get('input')!r}, resolution {previous.get('resolution')}, "
                f"fill {settings.get('fill')!r}, up_axis {settings.get('up_axis')!r}, classes "
                f"{settings.get('classes')}). Pass another --output, or delete {output!r} to "
                "prepare it again.")
        return
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise ValueError(
            f"--output {output!r} exists and is not a voxel cache; pass a new or empty directory.")
    os.makedirs(output, exist_ok=True)


def _write_shard(output, shard, files, outcomes, label_of, resolution, packing) -> None:
    """Write one shard (records, then its sidecar .json, then the rename that completes it)."""
    records, dropped = [], []
    counts = collections.Counter()
    for index, bits, reason in outcomes:
        shape = files[index]
        if bits is None:
            dropped.append({"file": shape.relative, "class": shape.class_name,
                            "split": shape.split, "reason": reason})
            continue
        records.append(cache.encode_example(bits, label_of[shape.class_name], shape.split,
                                            shape.relative, resolution, packing))
        counts[shape.class_name] += 1
    path = os.path.join(output, shard.name)
    cache.write_records(path + ".tmp", records)
    cache.write_json(os.path.splitext(path)[0] + ".json",
                     {"file": shard.name, "split": shard.split, "count": len(records),
                      "counts": dict(counts), "dropped": dropped})
    os.replace(path + ".tmp", path)


def _summary(output, shards, collection, splits) -> dict:
    """Counts, dropped files and shard sizes gathered from every shard's sidecar."""
    counts = {split: {name: 0 for name in collection.class_names} for split in splits}
    dropped = [{"file": name, "class": class_name, "split": split, "reason": reason}
               for name, class_name, split, reason in collection.dropped]
    listed = []
    for shard in shards:
        with open(os.path.join(output, os.path.splitext(shard.name)[0] + ".json")) as file:
            sidecar = json.load(file)
        for class_name, count in sidecar["counts"].items():
            counts[shard.split][class_name] += count
        dropped.extend(sidecar["dropped"])
        listed.append({"file": shard.name, "split": shard.split, "count": sidecar["count"]})
    return {"counts": counts, "dropped": dropped, "shards": listed}


@contextlib.contextmanager
def _mapped(function, items, workers: int) -> Iterator:
    """An iterator of ``function(item)`` in the order of ``items``, over ``workers`` processes."""
    if workers <= 1:
        yield map(function, items)
        return
    # "spawn": a forked child would inherit this process's TensorFlow threads and locks.
    # An executor, not a multiprocessing.Pool: when a worker dies (out of memory, a crash in
    # a native reader) it raises BrokenProcessPool instead of waiting forever.
    executor = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        # Small chunks keep the workers busy to the end; ordered results let this process
        # write each shard as soon as its files are in.
        yield executor.map(function, items,
                           chunksize=max(1, min(8, len(items) // (workers * 32))))
    except concurrent.futures.process.BrokenProcessPool as error:
        raise RuntimeError(
            "A worker process died while voxelizing (out of memory, or a crash in a mesh "
            "reader). The shards written so far are kept: run the same command again to "
            "resume, with --workers 1 to see which file it is.") from error
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


class _SimpleBar:
    """A progress line on stderr, for when tqdm is not installed."""

    def __init__(self, total: int, initial: int):
        self.total, self.count, self.started, self.shown = total, initial, time.time(), 0.0

    def update(self, count: int) -> None:
        self.count += count
        now = time.time()
        if now - self.shown >= 1.0 or self.count == self.total:
            self.shown = now
            print(f"\rprepare: {self.count}/{self.total} files, {now - self.started:.0f} s",
                  end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)


class _NoBar:
    def update(self, count: int) -> None:
        del count

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        bar = _NoBar()
    else:
        try:
            import tqdm
        except ImportError:
            bar = _SimpleBar(total, initial)
        else:
            bar = tqdm.tqdm(total=total, initial=initial, unit="file", desc="prepare",
                            dynamic_ncols=True, file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()

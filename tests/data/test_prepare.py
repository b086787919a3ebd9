"""Preparing a ModelNet-layout collection into the cache, and reading it back for training.

The archives are built here from trimesh primitives exported to .off, at 16^3, so that every
test runs in a second or two.
"""

import io
import json
import os
import zipfile

import numpy as np
import pytest
import trimesh

from tf3dgan import config as config_lib
from tf3dgan.data import cache, pipeline, prepare, registry
from tf3dgan.data.binvox import write_binvox
from tf3dgan.data.voxelize import voxelize_mesh

RESOLUTION = 16


def _off(mesh, glued_header=False):
    text = mesh.export(file_type="off")
    assert text.startswith("OFF\n")
    # ModelNet's files glue the counts to the keyword: "OFF490 518 0".
    return text.replace("OFF\n", "OFF", 1) if glued_header else text


def _box(scale=1.0):
    return trimesh.creation.box(extents=(1.0 * scale, 0.6, 0.4))


def _cylinder(scale=1.0):
    return trimesh.creation.cylinder(radius=0.4 * scale, height=1.0, sections=8)


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), "")
            else:
                archive.writestr(name, data)
    return path


def _modelnet_members(train=3, test=2):
    members = {"ModelNet/README.txt": "not a shape"}
    for class_name, make in (("box", _box), ("cylinder", _cylinder)):
        for split, count in (("train", train), ("test", test)):
            for number in range(count):
                glued = class_name == "box" and split == "train" and number == 0
                members[f"ModelNet/{class_name}/{split}/{class_name}_{number:04d}.off"] = _off(
                    make(1.0 + 0.25 * number), glued_header=glued)
    return members


def _data(data, data_path, **overrides):
    return config_lib.DataConfig(data=data, data_path=str(data_path), **overrides)


def test_modelnet_zip_goes_through_prepare_and_the_cache_into_training(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members())
    result = prepare.prepare_cache(archive, resolution=RESOLUTION, workers=2, shard_size=2,
                                   progress=False)

    output = str(tmp_path / "ModelNet_voxels16")  # the default, beside the input
    assert result.output == output and result.files_read == 10 and result.shards_skipped == 0
    manifest = json.loads((tmp_path / "ModelNet_voxels16" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["resolution"] == RESOLUTION
    assert manifest["class_names"] == ["box", "cylinder"]
    assert manifest["counts"] == {"train": {"box": 3, "cylinder": 3},
                                  "test": {"box": 2, "cylinder": 2}}
    assert manifest["dropped"] == []
    assert manifest["settings"]["layout"] == "modelnet"  # detected
    assert manifest["settings"]["up_axis"] == "z" and manifest["settings"]["fill"] == "solid"
    assert sorted(s["file"] for s in manifest["shards"]) == [
        "test-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord",
        "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord"]

    # --data cache and --data modelnet (which finds the cache beside the zip) read the same.
    from_cache = registry.load_dataset(_data("cache", output), RESOLUTION)
    from_layout = registry.load_dataset(_data("modelnet", archive), RESOLUTION)
    np.testing.assert_array_equal(from_cache.voxels, from_layout.voxels)
    assert from_cache.voxels.shape == (6, 16, 16, 16) and from_cache.voxels.dtype == np.uint8
    assert from_cache.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert from_cache.class_names == ("box", "cylinder")
    assert "6 shapes of box, cylinder at 16^3; 0 files dropped" in from_cache.description
    # The grids are the voxelizations of the files, in the archive's order: the glued
    # header was read like a normal one.
    for position, (make, number) in enumerate([(_box, 0), (_box, 1), (_box, 2)]):
        np.testing.assert_array_equal(from_cache.voxels[position],
                                      voxelize_mesh(make(1.0 + 0.25 * number), RESOLUTION))

    test_split = registry.load_dataset(_data("cache", output, split="test", classes="cylinder"),
                                       RESOLUTION)
    assert test_split.labels.tolist() == [1, 1]

    batches = pipeline.training_dataset(from_cache.voxels, 4, seed=3).take(2)
    for batch in batches:
        assert batch.shape == (4, 16, 16, 16) and batch.dtype.name == "float32"
        for grid in batch.numpy():
            assert any(np.array_equal(grid, cached) for cached in from_cache.voxels)


def test_every_supported_format_is_read_from_inside_a_zip(tmp_path):
    box = _box()
    expected = voxelize_mesh(box, RESOLUTION)
    folder = "ModelNet10/chair/train/"
    members = {f"{folder}chair_{number}.{extension}": box.export(file_type=extension)
               for number, extension in enumerate(("off", "obj", "stl", "ply", "glb"))}
    # A .gltf keeps its geometry in .bin files beside it: they are read from the archive.
    for name, data in trimesh.Scene(box).export(file_type="gltf").items():
        members[folder + ("chair_5.gltf" if name == "model.gltf" else name)] = data
    grid = io.BytesIO()
    write_binvox(grid, expected, up_axis="z")
    members[folder + "chair_6.binvox"] = grid.getvalue()
    members["ModelNet10/chair/test/chair_7.obj"] = box.export(file_type="obj")
    archive = _write_zip(tmp_path / "ModelNet10.zip", members)

    result = prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1,
                                   progress=False)
    assert result.manifest["dropped"] == []
    assert result.manifest["counts"] == {"train": {"chair": 7}, "test": {"chair": 1}}
    # The .gltf's buffers are side files, not shapes.
    assert sorted(entry["file"] for entry in result.manifest["ignored"]) == sorted(
        name for name in members if name.endswith(".bin"))
    for split in ("train", "test"):
        for voxels in cache.read_cache(result.output, split).voxels:
            np.testing.assert_array_equal(voxels, expected)


def test_raw_packing_reads_back_the_same_grids(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members(train=2, test=0))
    bits = prepare.prepare_cache(archive, tmp_path / "bits", RESOLUTION, workers=1, progress=False)
    raw = prepare.prepare_cache(archive, tmp_path / "raw", RESOLUTION, workers=1, packing="raw",
                                progress=False)
    assert raw.manifest["packing"] == "raw"
    np.testing.assert_array_equal(cache.read_cache(bits.output).voxels,
                                  cache.read_cache(raw.output).voxels)


def test_an_interrupted_run_resumes_and_skips_the_shards_that_are_done(tmp_path, monkeypatch):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members())
    output = tmp_path / "cache"
    written = []
    real_write = prepare._write_shard

    def write_two_then_fail(output_dir, shard, *args):
        if len(written) == 2:
            raise KeyboardInterrupt  # the user stops the run
        real_write(output_dir, shard, *args)
        written.append(shard.name)

    monkeypatch.setattr(prepare, "_write_shard", write_two_then_fail)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_cache(archive, output, RESOLUTION, workers=1, shard_size=2, progress=False)
    monkeypatch.undo()
    done = {name: os.stat(output / name).st_mtime_ns for name in written}
    assert len(done) == 2
    with pytest.raises(ValueError, match="is incomplete: its preparation was interrupted.*Run the "
                                         "same python -m pipelines.prepare command again"):
        registry.load_dataset(_data("cache", output), RESOLUTION)

    result = prepare.prepare_cache(archive, output, RESOLUTION, workers=1, shard_size=2,
                                   progress=False)
    # 5 shards of 2 files: 3 of train (6 files), 2 of test (4); the first 2 were done.
    assert result.shards_skipped == 2 and result.files_read == 10 - 4
    assert {name: os.stat(output / name).st_mtime_ns for name in written} == done
    assert result.manifest["complete"]
    assert sum(s["count"] for s in result.manifest["shards"]) == 10
    assert not list(output.glob("*.tmp"))

    again = prepare.prepare_cache(archive, output, RESOLUTION, workers=1, shard_size=2,
                                  progress=False)
    assert again.files_read == 0 and again.shards_skipped == 5
    assert len(registry.load_dataset(_data("cache", output), RESOLUTION).voxels) == 6


def test_other_settings_are_not_mixed_into_an_existing_cache(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members(train=1, test=0))
    output = tmp_path / "cache"
    prepare.prepare_cache(archive, output, RESOLUTION, workers=1, progress=False)
    with pytest.raises(ValueError, match="holds a cache prepared from other files or with other "
                                         "settings .*fill 'solid'.*Pass another --output"):
        prepare.prepare_cache(archive, output, RESOLUTION, fill="surface", workers=1, progress=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a voxel cache; pass a new or empty"):
        prepare.prepare_cache(archive, tmp_path / "notes", RESOLUTION, workers=1, progress=False)


def _bad_and_odd_members():
    members = _modelnet_members(train=1, test=0)
    bad = "ModelNet/box/train/"
    open_box = _box()
    open_box.update_faces(np.arange(len(open_box.faces)) >= 2)  # one side missing
    two_bodies = trimesh.util.concatenate([_box(), _box().apply_translation((2.0, 0, 0))])
    members.update({
        bad + "empty.off": "",
        bad + "points.off": "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n",
        bad + "truncated.off": _off(_box())[:60],
        bad + "chair.3ds": b"\x4d\x4d\x00\x00",
        bad + "open_box.off": _off(open_box),
        bad + "two_bodies.off": _off(two_bodies),
        bad + "notes.txt": "a text file beside the meshes",
    })
    return members


def test_the_manifest_lists_each_dropped_file_with_its_reason(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _bad_and_odd_members())
    result = prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1,
                                   progress=False)
    manifest = result.manifest
    reasons = {entry["file"].split("/")[-1]: entry["reason"] for entry in manifest["dropped"]}
    assert sorted(reasons) == ["chair.3ds", "empty.off", "points.off", "truncated.off"]
    assert "trimesh could not read it as .off (corrupt or truncated?)" in reasons["empty.off"]
    assert "it has no triangle faces" in reasons["points.off"]
    assert "trimesh could not read it as .off (corrupt or truncated?)" in reasons["truncated.off"]
    assert "'.3ds' is not a format trimesh can read" in reasons["chair.3ds"]
    assert all(entry["class"] == "box" and entry["split"] == "train"
               for entry in manifest["dropped"])
    assert manifest["ignored"] == [{"file": "ModelNet/box/train/notes.txt",
                                    "reason": "not a shape file (companion or text file)"}]
    # A mesh with a hole and a file of two bodies are usable: kept, not dropped.
    assert manifest["found"]["train"] == {"box": 7, "cylinder": 1}
    assert manifest["counts"]["train"] == {"box": 3, "cylinder": 1}
    loaded = registry.load_dataset(_data("cache", result.output, classes="box"), RESOLUTION)
    assert "3 shapes of box at 16^3; 4 files dropped" in loaded.description
    assert all(grid.any() for grid in loaded.voxels)


def test_an_empty_class_folder_stops_the_run_before_any_work(tmp_path):
    members = _modelnet_members(train=1, test=0)
    members["ModelNet/bathtub/"] = ""
    members["ModelNet/bathtub/train/"] = ""
    archive = _write_zip(tmp_path / "ModelNet.zip", members)
    with pytest.raises(ValueError, match=r"the class folder\(s\) bathtub hold no shape files "
                                         r"\(CLASS/train/\*\.off and CLASS/test/\*\.off expected\)"
                                         r".*--classes box,cylinder"):
        prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1, progress=False)
    assert not (tmp_path / "cache").exists()
    # Leaving the empty class out is the fix the message gives.
    result = prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1,
                                   classes=["box", "cylinder"], progress=False)
    assert result.manifest["class_names"] == ["box", "cylinder"]


def test_a_dataset_with_nothing_usable_stops_with_the_reasons(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", {
        "chair/train/a.off": "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n",
        "chair/test/b.off": "OFF\n8 12 0\n0 0",
    })
    with pytest.raises(ValueError, match=r"Nothing usable in .*ModelNet.zip': all 2 shape files "
                                         r"were dropped \(chair/train/a.off: it has no triangle "
                                         r"faces.*Every file and its reason is in .*manifest.json"):
        prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1, progress=False)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["dropped"]) == 2


_POINTS_OFF = "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"


def test_a_run_that_drops_more_than_half_stops_unless_allow_dropped(tmp_path):
    members = {"ModelNet/box/train/box_0000.off": _off(_box()),
               "ModelNet/box/test/box_0001.off": _off(_box(1.5))}
    members.update({f"ModelNet/box/train/bad_{n}.off": _POINTS_OFF for n in range(3)})
    archive = _write_zip(tmp_path / "ModelNet.zip", members)
    output = tmp_path / "cache"
    with pytest.raises(ValueError) as raised:
        prepare.prepare_cache(archive, output, RESOLUTION, workers=1, progress=False)
    message = str(raised.value)
    assert message.startswith(
        f"Too much of {str(archive)!r} could not be used: 3 of its 5 shape files were dropped, "
        "more than half. The dropped files:\n"
        "  ModelNet/box/train/bad_0.off: it has no triangle faces")
    assert "\n  ModelNet/box/train/bad_2.off: it has no triangle faces" in message
    assert message.endswith(
        f"The cache {str(output)!r} is left incomplete. Fix or remove those files and prepare "
        f"again (into a new --output, or after deleting {str(output)!r}), or run the same "
        "command with --allow_dropped (allow_dropped=True) to accept the loss; the shards "
        "already written are reused.")
    manifest = json.loads((output / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["dropped"]) == 3
    with pytest.raises(ValueError, match="is incomplete"):
        registry.load_dataset(_data("cache", output), RESOLUTION)

    accepted = prepare.prepare_cache(archive, output, RESOLUTION, workers=1, progress=False,
                                     allow_dropped=True)
    assert accepted.manifest["complete"] and accepted.files_read == 0
    assert accepted.manifest["counts"] == {"train": {"box": 1}, "test": {"box": 1}}
    assert len(registry.load_dataset(_data("cache", output), RESOLUTION).voxels) == 1


def test_a_split_that_loses_every_file_stops_unless_allow_dropped(tmp_path):
    members = {f"ModelNet/box/train/box_{n:04d}.off": _off(_box(1.0 + 0.25 * n))
               for n in range(3)}
    members["ModelNet/box/test/box_0100.off"] = _POINTS_OFF
    archive = _write_zip(tmp_path / "ModelNet.zip", members)
    with pytest.raises(ValueError, match=r"could not be used: its test split is empty: all 1 of "
                                         r"its shape files were dropped\. The dropped files:\n"
                                         r"  ModelNet/box/test/box_0100\.off: it has no "
                                         r"triangle faces"):
        prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1, progress=False)
    result = prepare.prepare_cache(archive, tmp_path / "cache", RESOLUTION, workers=1,
                                   progress=False, allow_dropped=True)
    assert result.manifest["complete"]
    assert result.manifest["counts"] == {"train": {"box": 3}, "test": {"box": 0}}


def test_the_dropped_report_names_the_first_files_and_counts_the_rest():
    dropped = [{"file": f"chair/train/{n}.off", "reason": f"reason {n}"} for n in range(25)]
    lines = prepare.dropped_report(dropped, "out/manifest.json")
    assert len(lines) == prepare.DROPPED_SHOWN + 1 == 21
    assert lines[0] == "chair/train/0.off: reason 0"
    assert lines[19] == "chair/train/19.off: reason 19"
    assert lines[20] == "... and 5 more, see out/manifest.json"
    assert prepare.dropped_report(dropped[:20], "m.json") == [
        f"chair/train/{n}.off: reason {n}" for n in range(20)]
    assert prepare.dropped_report([], "m.json") == []
    with pytest.raises(ValueError, match="limit must be an integer >= 0, got -1"):
        prepare.dropped_report(dropped, "m.json", limit=-1)


def test_a_layout_without_its_cache_says_how_to_prepare_it(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members(train=1, test=0))
    expected = (f"python -m pipelines.prepare --data modelnet --input {archive} --output "
                f"{tmp_path / 'ModelNet_voxels32'} --resolution 32")
    with pytest.raises(FileNotFoundError) as caught:
        registry.load_dataset(_data("modelnet", archive), 32)
    assert expected in str(caught.value)
    assert "there is no prepared cache at" in str(caught.value)
    # With a 16^3 cache beside the input, the message points at it too.
    prepare.prepare_cache(archive, resolution=RESOLUTION, workers=1, progress=False)
    with pytest.raises(FileNotFoundError, match="A 16\\^3 cache exists: --data cache --data_path "
                                                ".*ModelNet_voxels16 trains on it, upsampled"):
        registry.load_dataset(_data("modelnet", archive), 32)
    upsampled = registry.load_dataset(_data("cache", tmp_path / "ModelNet_voxels16"), 32)
    assert upsampled.resolution == 16
    assert "at 16^3 (upsampled to 32^3 in the pipeline)" in upsampled.description


def test_unknown_classes_and_missing_inputs_are_named(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members(train=1, test=0))
    with pytest.raises(ValueError, match="Unknown class 'lamp' in .*Known classes: box, cylinder"):
        prepare.prepare_cache(archive, tmp_path / "c", RESOLUTION, classes=["lamp"], progress=False)
    with pytest.raises(FileNotFoundError, match="Input .*nowhere.zip' does not exist"):
        prepare.prepare_cache(tmp_path / "nowhere.zip", tmp_path / "c", RESOLUTION, progress=False)
    (tmp_path / "shapes.npz").write_bytes(io.BytesIO(b"PK").getvalue())
    with pytest.raises(ValueError, match="is neither a folder nor a .zip archive"):
        prepare.prepare_cache(tmp_path / "shapes.npz", tmp_path / "c", RESOLUTION, progress=False)


def test_a_modelnet_folder_gives_the_grids_of_its_zip(tmp_path):
    archive = _write_zip(tmp_path / "ModelNet.zip", _modelnet_members(train=2, test=1))
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(tmp_path / "unpacked")
    from_zip = prepare.prepare_cache(archive, tmp_path / "a", RESOLUTION, workers=1,
                                     progress=False)
    from_folder = prepare.prepare_cache(tmp_path / "unpacked", tmp_path / "b", RESOLUTION,
                                        workers=1, progress=False)
    assert from_folder.manifest["counts"] == from_zip.manifest["counts"]
    for split in ("train", "test"):
        np.testing.assert_array_equal(cache.read_cache(from_zip.output, split).voxels,
                                      cache.read_cache(from_folder.output, split).voxels)


def test_3d_shapenets_mat_files_with_their_resolution_folder(tmp_path):
    # 3D ShapeNets' voxelized release: volumetric_data/CLASS/30/train|test/*.mat, key "instance".
    import scipy.io

    rng = np.random.default_rng(0)
    grids = {}
    for class_name in ("bed", "chair"):
        for split in ("train", "test"):
            folder = tmp_path / "volumetric_data" / class_name / "30" / split
            folder.mkdir(parents=True)
            grid = np.zeros((8, 8, 8), np.uint8)
            grid[rng.integers(0, 8, 20), rng.integers(0, 8, 20), rng.integers(0, 8, 20)] = 1
            scipy.io.savemat(folder / f"{class_name}_000001_1.mat", {"instance": grid})
            grids[class_name, split] = grid
    (tmp_path / "volumetric_data" / "chair" / "30" / "train" / "broken.mat").write_bytes(b"MATLAB?")

    result = prepare.prepare_cache(tmp_path / "volumetric_data", tmp_path / "cache", resolution=16,
                                   workers=1, progress=False)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["settings"]["layout"] == "modelnet"
    assert manifest["counts"] == {"train": {"bed": 1, "chair": 1}, "test": {"bed": 1, "chair": 1}}
    assert [d["file"].rsplit("/", 1)[-1] for d in manifest["dropped"]] == ["broken.mat"]
    assert result.files_read == 5
    train = registry.load_dataset(_data("cache", str(tmp_path / "cache")), 16)
    # 8^3 grids are brought to 16^3 by repeating each voxel twice along each axis.
    expected = grids["bed", "train"].repeat(2, 0).repeat(2, 1).repeat(2, 2)
    np.testing.assert_array_equal(train.voxels[train.labels.tolist().index(0)], expected)

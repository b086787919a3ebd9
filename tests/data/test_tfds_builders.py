"""The TFDS builders (modelnet10, modelnet40, tf3dgan_synthetic), built offline in temporary
data directories, and ``--data tfds`` reading what they prepared.

The ModelNet archives are made here from trimesh primitives exported to .off (one with the
header glued to its counts, ``OFF8 12 0``, as in real ModelNet files), with one file that
cannot be voxelized and the junk that the official archives hold (``__MACOSX/``, a
README). Everything is at 32^3 and has a few shapes, so the file runs in well under a minute.
"""

import logging
import shutil
import tempfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
import trimesh

from tf3dgan import config as config_lib
from tf3dgan.data import registry, synthetic
from tf3dgan.data.tfds import modelnet, prepared, synthetic_shapes
from tf3dgan.data.voxelize import voxelize_mesh

RESOLUTION = 32

# A mesh with vertices and no faces: every builder must skip it, and say so.
_POINT_CLOUD_OFF = "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"
_BAD_MEMBER = "table/train/table_0003.off"


def _off(mesh, glued_header=False):
    text = mesh.export(file_type="off")
    assert text.startswith("OFF\n")
    return text.replace("OFF\n", "OFF", 1) if glued_header else text


def _meshes():
    """{member below the root folder: mesh}; chairs are boxes, tables cylinders."""
    return {
        "chair/train/chair_0001.off": trimesh.creation.box(extents=(1.0, 0.6, 0.4)),
        "chair/train/chair_0002.off": trimesh.creation.box(extents=(0.5, 0.9, 0.7)),
        "chair/test/chair_0101.off": trimesh.creation.box(extents=(0.3, 0.3, 1.0)),
        "table/train/table_0001.off": trimesh.creation.cylinder(radius=0.5, height=0.3),
        "table/train/table_0002.off": trimesh.creation.cylinder(radius=0.2, height=1.0),
        "table/test/table_0101.off": trimesh.creation.icosphere(subdivisions=1),
    }


def _write_archive(path, root):
    """A ModelNet-layout zip: {root}/CLASS/train|test/*.off, plus a bad file and junk."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{root}/README.txt", "not a shape")
        archive.writestr(f"__MACOSX/{root}/chair/._chair_0001.off", "resource fork")
        for member, mesh in _meshes().items():
            archive.writestr(f"{root}/{member}",
                             _off(mesh, glued_header=member.endswith("chair_0001.off")))
        archive.writestr(f"{root}/{_BAD_MEMBER}", _POINT_CLOUD_OFF)
    return path


def test_fake_archive_has_a_glued_header(tmp_path):
    archive = _write_archive(tmp_path / "ModelNet10.zip", "ModelNet10")
    with zipfile.ZipFile(archive) as opened:
        first_line = opened.read("ModelNet10/chair/train/chair_0001.off").split(b"\n")[0]
    assert first_line == b"OFF8 12 0"


class _FakeArchive:
    """Mixed into the test cases: writes the builder's archive into a temporary EXAMPLE_DIR
    (which DatasetBuilderTestCase passes as the manual_dir). Not a TestCase itself, so that
    pytest does not collect it."""

    SPLITS = {"train": 4, "test": 2}  # the point cloud is skipped
    BUILDER_CONFIG_NAMES_TO_TEST = ["32"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.EXAMPLE_DIR = tempfile.mkdtemp(prefix="tf3dgan_tfds_")
        archive = cls.DATASET_CLASS.ARCHIVE
        _write_archive(f"{cls.EXAMPLE_DIR}/{archive}", archive.removesuffix(".zip"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.EXAMPLE_DIR, ignore_errors=True)
        super().tearDownClass()


class ModelNet10Test(_FakeArchive, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = modelnet.ModelNet10


class ModelNet40Test(_FakeArchive, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = modelnet.ModelNet40


class SyntheticShapesTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = synthetic_shapes.Tf3dganSynthetic
    BUILDER_CONFIG_NAMES_TO_TEST = [synthetic_shapes.SyntheticShapesConfig(
        name="tiny", resolution=RESOLUTION, train_shapes_per_class=2, test_shapes_per_class=1)]
    SPLITS = {"train": 10, "test": 5}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.EXAMPLE_DIR = tempfile.mkdtemp(prefix="tf3dgan_tfds_")  # unused: no downloads

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.EXAMPLE_DIR, ignore_errors=True)
        super().tearDownClass()


def test_builders_are_registered_with_both_resolutions():
    for name in ("modelnet10", "modelnet40", "tf3dgan_synthetic"):
        configs = {c.name: c.resolution for c in tfds.builder_cls(name).BUILDER_CONFIGS}
        assert configs == {"32": 32, "64": 64}
    assert tfds.builder_cls("modelnet10").MANUAL_DOWNLOAD_INSTRUCTIONS.count("ModelNet10.zip") >= 2
    assert "ModelNet40.zip" in tfds.builder_cls("modelnet40").MANUAL_DOWNLOAD_INSTRUCTIONS
    assert not tfds.builder_cls("tf3dgan_synthetic").MANUAL_DOWNLOAD_INSTRUCTIONS
    assert tfds.builder("modelnet40/32").info.features["label"].num_classes == 40


@pytest.fixture(scope="module")
def modelnet_dirs(tmp_path_factory):
    """(data_dir, manual_dir) with modelnet10/32 built from the fake archive by tfds.load."""
    manual_dir = tmp_path_factory.mktemp("manual")
    _write_archive(manual_dir / "ModelNet10.zip", "ModelNet10")
    data_dir = tmp_path_factory.mktemp("tfds_data")
    return data_dir, manual_dir


def test_modelnet_tfds_load_voxelizes_like_the_reader_and_records_skipped_files(
        modelnet_dirs, caplog):
    data_dir, manual_dir = modelnet_dirs
    with caplog.at_level(logging.WARNING, logger="tf3dgan.data.tfds.modelnet"):
        train = tfds.load("modelnet10/32", split="train", data_dir=data_dir,
                          download_and_prepare_kwargs={
                              "download_config": tfds.download.DownloadConfig(
                                  manual_dir=manual_dir)})
    assert any(_BAD_MEMBER in record.getMessage() and "no triangle faces" in record.getMessage()
               for record in caplog.records)

    names = modelnet.MODELNET10_CLASSES
    examples = {ex["source"].decode(): ex for ex in tfds.as_numpy(train)}
    meshes = _meshes()
    assert sorted(examples) == sorted(f"ModelNet10/{m}" for m in meshes if "/train/" in m)
    for source, example in examples.items():
        member = source.removeprefix("ModelNet10/")
        assert example["voxels"].dtype == np.uint8 and example["voxels"].shape == (32, 32, 32)
        np.testing.assert_array_equal(example["voxels"], voxelize_mesh(meshes[member], 32))
        assert names[example["label"]] == member.split("/")[0]

    # The skipped file survives in the prepared dataset's metadata, read back from disk.
    info = tfds.builder("modelnet10/32", data_dir=data_dir).info
    assert info.metadata["skipped"] == [{
        "file": f"ModelNet10/{_BAD_MEMBER}", "class": "table", "split": "train",
        "reason": info.metadata["skipped"][0]["reason"]}]
    assert "no triangle faces" in info.metadata["skipped"][0]["reason"]
    assert info.metadata["counts"]["train"]["chair"] == 2
    assert info.metadata["counts"]["test"] == {n: int(n in ("chair", "table")) for n in names}
    assert (data_dir / "modelnet10" / "32" / "1.0.0" / "metadata.json").is_file()


def test_data_tfds_reads_the_prepared_modelnet(modelnet_dirs, monkeypatch):
    data_dir, manual_dir = modelnet_dirs
    prepared.prepare("modelnet10/32", data_dir, manual_dir)  # built by the test above, or now
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))

    data = registry.load_dataset(config_lib.DataConfig(
        data="tfds", data_path="modelnet10/32", classes="table"), 64)
    assert data.class_names == modelnet.MODELNET10_CLASSES and data.resolution == 32
    assert data.voxels.shape == (2, 32, 32, 32) and data.voxels.dtype == np.uint8
    assert data.labels.tolist() == [8, 8]  # "table" keeps its index among the ten classes
    assert "upsampled to 64^3" in data.description and "1 files skipped" in data.description

    test = registry.load_dataset(config_lib.DataConfig(
        data="tfds", data_path="modelnet10/32", split="test"), 32)
    assert sorted(test.labels.tolist()) == [2, 8] and "0 files skipped" in test.description

    with pytest.raises(ValueError, match="Unknown class 'lamp'.*Known classes: bathtub"):
        registry.load_dataset(config_lib.DataConfig(
            data="tfds", data_path="modelnet10/32", classes="lamp"), 32)
    with pytest.raises(ValueError, match="no split 'validation'"):
        registry.load_dataset(config_lib.DataConfig(
            data="tfds", data_path="modelnet10/32", split="validation"), 32)


def test_data_tfds_says_how_to_prepare_a_missing_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        registry.load_dataset(config_lib.DataConfig(data="tfds", data_path="modelnet40/64"), 64)
    message = str(error.value)
    assert f"not prepared in {str(tmp_path)!r}" in message
    assert (f"python -m pipelines.build_tfds modelnet40/64 --manual_dir DIR --data_dir "
            f"{tmp_path}") in message and "ModelNet40.zip" in message
    assert not (tmp_path / "modelnet40").exists()  # nothing was built
    with pytest.raises(ValueError, match="Unknown TFDS dataset 'modelnet20'"):
        registry.load_dataset(config_lib.DataConfig(data="tfds", data_path="modelnet20/32"), 32)
    with pytest.raises(ValueError, match="needs --data_path with a TFDS dataset name"):
        registry.load_dataset(config_lib.DataConfig(data="tfds"), 32)


def test_modelnet_build_refuses_a_missing_or_wrong_archive(tmp_path):
    manual_dir = tmp_path / "manual"
    with pytest.raises(FileNotFoundError, match="does not hold it. Pass --manual_dir"):
        prepared.prepare("modelnet10/32", tmp_path / "data", manual_dir)
    manual_dir.mkdir()
    (manual_dir / "notes.txt").write_text("the archive is elsewhere")  # TFDS wants it non-empty
    with pytest.raises(FileNotFoundError, match="needs the official ModelNet10.zip"):
        tfds.load("modelnet10/32", data_dir=tmp_path / "data", download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)})
    # A ModelNet40 archive under the ModelNet10 name: its classes give it away, before any work.
    with zipfile.ZipFile(manual_dir / "ModelNet10.zip", "w") as archive:
        archive.writestr("ModelNet40/airplane/train/airplane_0001.off",
                         _off(trimesh.creation.box()))
    with pytest.raises(ValueError, match="class folders that this dataset does not have: "
                                         "airplane"):
        prepared.prepare("modelnet10/32", tmp_path / "data", manual_dir)


def test_modelnet_build_stops_when_no_mesh_of_a_split_is_usable(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    with zipfile.ZipFile(manual_dir / "ModelNet10.zip", "w") as archive:
        archive.writestr("ModelNet10/chair/train/chair_0001.off", _POINT_CLOUD_OFF)
        archive.writestr("ModelNet10/chair/test/chair_0002.off", "OFF\ntruncated")
    with pytest.raises(ValueError, match="none of the 1 train meshes of ModelNet10.zip"):
        prepared.prepare("modelnet10/32", tmp_path / "data", manual_dir, workers=1)


def test_modelnet_build_reads_every_mesh_format_of_the_archive(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    with zipfile.ZipFile(manual_dir / "ModelNet10.zip", "w") as archive:
        for number, extension in enumerate(("obj", "stl", "ply")):
            archive.writestr(f"ModelNet10/chair/train/chair_000{number}.{extension}",
                             box.export(file_type=extension))
        archive.writestr("ModelNet10/chair/test/chair_0101.glb", box.export(file_type="glb"))
    builder = prepared.prepare("modelnet10/32", tmp_path / "data", manual_dir, workers=1)
    assert builder.info.metadata["skipped"] == []
    assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == {
        "train": 3, "test": 1}
    for example in tfds.as_numpy(builder.as_dataset(split="train")):
        np.testing.assert_array_equal(example["voxels"], voxelize_mesh(box, 32))


def test_modelnet_builder_voxelizes_in_worker_processes(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    _write_archive(manual_dir / "ModelNet40.zip", "ModelNet40")
    builder = prepared.prepare("modelnet40/32", tmp_path / "data", manual_dir, workers=2)
    assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == {
        "train": 4, "test": 2}
    chair = modelnet.MODELNET40_CLASSES.index("chair")
    grids = {ex["source"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="test"))}
    np.testing.assert_array_equal(grids["ModelNet40/chair/test/chair_0101.off"]["voxels"],
                                  voxelize_mesh(_meshes()["chair/test/chair_0101.off"], 32))
    assert grids["ModelNet40/chair/test/chair_0101.off"]["label"] == chair
    with pytest.raises(ValueError, match="workers must be None or a positive integer"):
        modelnet.ModelNet40(data_dir=tmp_path / "data", config="32", workers=0)


def test_synthetic_tfds_load_round_trip_is_the_synthetic_dataset(tmp_path, monkeypatch):
    tiny = synthetic_shapes.SyntheticShapesConfig(
        name="tiny", resolution=RESOLUTION, train_shapes_per_class=3, test_shapes_per_class=1)
    splits = {}
    for run in ("first", "second"):  # two builds in two data directories: the same bytes
        data_dir = tmp_path / run
        train, test = tfds.load("tf3dgan_synthetic", split=["train", "test"], data_dir=data_dir,
                                builder_kwargs={"config": tiny})
        splits[run] = {ex["source"].decode(): ex for ex in tfds.as_numpy(train)}
        assert len(list(test)) == 5
    assert splits["first"].keys() == splits["second"].keys()
    for source, example in splits["first"].items():
        np.testing.assert_array_equal(example["voxels"], splits["second"][source]["voxels"])

    # The train split holds exactly make_synthetic_dataset(3, 32, seed=0), shape by shape.
    voxels, labels = synthetic.make_synthetic_dataset(3, resolution=RESOLUTION, seed=0)
    assert set(splits["first"]) == {f"synthetic/0/{i}" for i in range(15)}
    for index in range(15):
        example = splits["first"][f"synthetic/0/{index}"]
        assert example["voxels"].dtype == np.uint8 and example["label"] == labels[index]
        np.testing.assert_array_equal(example["voxels"], voxels[index])


def test_synthetic_published_config_loads_through_data_tfds(tmp_path, monkeypatch):
    builder = prepared.prepare("tf3dgan_synthetic/32", tmp_path)
    assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == {
        "train": 2000, "test": 500}
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    data = registry.load_dataset(config_lib.DataConfig(
        data="tfds", data_path="tf3dgan_synthetic/32", split="test", classes="lamp,bed"), 32)
    assert data.class_names == synthetic.SYNTHETIC_CLASSES
    assert np.bincount(data.labels, minlength=5).tolist() == [0, 0, 100, 0, 100]
    # Test shapes come from seed 1: shape 4 is a lamp, shape 2 a bed.
    stored = {grid.tobytes() for grid in data.voxels}
    for index in (2, 4, 497):
        grid = synthetic.make_shape(synthetic.SYNTHETIC_CLASSES[index % 5], 32,
                                    np.random.default_rng([1, index]))
        assert grid.astype(np.uint8).tobytes() in stored

"""python -m pipelines.render_pairs: from a dataset, a mesh folder and a pair folder."""

import csv

import numpy as np
import pytest
import trimesh
from PIL import Image

from pipelines import render_pairs as cli
from tf3dgan.data import image_pairs


def _run(tmp_path, capsys, *flags):
    out = tmp_path / "pairs.npz"
    code = cli.main([*flags, "--out", str(out), "--workers", "1", "--no_progress"])
    captured = capsys.readouterr()
    return code, out, captured.out, captured.err


def test_synthetic_dataset_to_pairs_and_contact_sheet(tmp_path, capsys):
    code, out, printed, _ = _run(tmp_path, capsys, "--data", "synthetic",
                                 "--synthetic_shapes_per_class", "1", "--resolution", "16",
                                 "--views_per_shape", "2", "--image_size", "16",
                                 "--classes", "chair,table", "--contact_pairs", "3")
    assert code == 0
    pairs = image_pairs.load_pairs(out)
    assert pairs.images.shape == (4, 16, 16, 3) and pairs.voxels.shape == (2, 16, 16, 16)
    assert pairs.class_names == ("chair", "table")
    assert "4 pictures 16x16 of 2 shapes at 16^3" in printed
    assert "per class: chair 2, table 2" in printed
    sheet = tmp_path / "pairs.contact.png"
    assert f"Contact sheet (picture | its shape): {sheet}" in printed
    with Image.open(sheet) as picture:
        assert picture.size == (3 * (2 * 96 + 8) - 6, 96)

    # The same command again refuses to overwrite; --overwrite replaces the file.
    code, _, _, err = _run(tmp_path, capsys, "--data", "synthetic", "--resolution", "16",
                           "--synthetic_shapes_per_class", "1", "--image_size", "16")
    assert code == 2 and "exists; pass --overwrite" in err
    code, _, _, _ = _run(tmp_path, capsys, "--data", "synthetic", "--resolution", "16",
                         "--synthetic_shapes_per_class", "1", "--image_size", "16",
                         "--views_per_shape", "1", "--classes", "lamp", "--overwrite",
                         "--contact_pairs", "0")
    assert code == 0 and image_pairs.load_pairs(out).num_pairs == 1


def test_mesh_folder_labels_by_sub_folder(tmp_path, capsys):
    for name, mesh in (("box", trimesh.creation.box((1, 0.5, 0.3))),
                       ("cone", trimesh.creation.cone(0.5, 1.0, sections=8))):
        (tmp_path / "meshes" / name).mkdir(parents=True)
        mesh.export(tmp_path / "meshes" / name / f"{name}.off")
    code, out, printed, _ = _run(tmp_path, capsys, "--mesh_folder", str(tmp_path / "meshes"),
                                 "--resolution", "16", "--views_per_shape", "1",
                                 "--image_size", "16")
    assert code == 0, printed
    pairs = image_pairs.load_pairs(out)
    assert pairs.class_names == ("box", "cone") and pairs.labels.tolist() == [0, 1]
    code, _, _, err = _run(tmp_path, capsys, "--mesh_folder", str(tmp_path), "--overwrite",
                           "--up_axis", "z")
    assert code == 0  # meshes in sub-sub-folders are found too
    (tmp_path / "empty").mkdir()
    code, _, _, err = _run(tmp_path, capsys, "--mesh_folder", str(tmp_path / "empty"),
                           "--overwrite")
    assert code == 2 and "no mesh files" in err


def test_pair_folder_and_its_errors(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(np.full((10, 10, 3), 50, np.uint8)).save(folder / "a.png")
    grid = np.zeros((8, 8, 8), np.uint8)
    grid[2:6, 2:6, :4] = 1
    np.save(folder / "a.npy", grid)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("image", "shape"), ("a.png", "a.npy")])
    code, out, printed, _ = _run(tmp_path, capsys, "--pair_folder", str(folder), "--resolution",
                                 "8", "--image_size", "16")
    assert code == 0
    pairs = image_pairs.load_pairs(out)
    np.testing.assert_array_equal(pairs.voxels[0], grid)
    assert "1 pictures 16x16 of 1 shapes at 8^3" in printed
    (folder / "manifest.csv").write_text("image,shape\nb.png,a.npy\n")
    code, _, _, err = _run(tmp_path, capsys, "--pair_folder", str(folder), "--resolution", "8",
                           "--overwrite")
    assert code == 2 and "manifest.csv line 2: image 'b.png' not found" in err


def test_flags_need_exactly_one_source(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--out", str(tmp_path / "x.npz")])
    with pytest.raises(SystemExit):
        cli.parse_args(["--data", "synthetic", "--pair_folder", "p", "--out", "x.npz"])
    assert "not allowed with argument" in capsys.readouterr().err

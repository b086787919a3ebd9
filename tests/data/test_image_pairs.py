"""(image, shape) pairs: rendering, saving, users' folders and the training stream."""

import csv
import os

import numpy as np
import pytest
import scipy.io
import trimesh
from PIL import Image

from tf3dgan.data import image_pairs, pair_contact_sheet, render
from tf3dgan.data.binvox import write_binvox
from tf3dgan.data.image_pairs import (PairSet, load_pair_folder, load_pairs, pair_dataset,
                                      render_mesh_pairs, render_pairs, save_pairs)

BACKGROUND = render.BACKGROUND_COLOR.astype(np.uint8)


def _grids(count=5, size=8, seed=0):
    """Random non-empty grids, each different."""
    grids = (np.random.default_rng(seed).random((count,) + (size,) * 3) < 0.4).astype(np.uint8)
    grids[:, 0, 0, 0] = 1
    return grids


def _pairs(count=5, views=2, image_size=16, seed=0):
    grids = _grids(count)
    return render_pairs(grids, np.arange(count) % 2, ("even", "odd"), views_per_shape=views,
                        image_size=image_size, seed=seed, progress=False)


# ---------------------------------------------------------------------------------------------
# Rendering.
# ---------------------------------------------------------------------------------------------


def test_render_pairs_shapes_dtypes_and_order():
    grids = _grids(4)
    pairs = render_pairs(grids.astype(np.float32), [0, 1, 1, 0], ["a", "b"], views_per_shape=3,
                         image_size=16, seed=7, progress=False)
    assert pairs.images.shape == (12, 16, 16, 3) and pairs.images.dtype == np.uint8
    np.testing.assert_array_equal(pairs.shape_index, np.repeat(np.arange(4), 3))
    assert pairs.shape_index.dtype == np.int64 and pairs.labels.dtype == np.int64
    np.testing.assert_array_equal(pairs.voxels, grids)
    assert pairs.voxels.dtype == np.uint8
    np.testing.assert_array_equal(pairs.labels, [0, 1, 1, 0])
    assert pairs.class_names == ("a", "b")
    assert pairs.viewpoints.shape == (12, 2) and pairs.viewpoints.dtype == np.float32
    elevation, azimuth = pairs.viewpoints.T
    assert np.all((elevation >= 15) & (elevation <= 45))
    assert np.all((azimuth >= 0) & (azimuth < 360))
    assert len(np.unique(azimuth)) == 12
    assert (pairs.num_pairs, pairs.num_shapes, pairs.resolution, pairs.image_size) == (12, 4, 8, 16)
    assert "3 views of 4 8^3 grids" in pairs.description


def test_each_picture_is_the_render_of_its_shape_from_its_viewpoint():
    pairs = _pairs(count=3, views=2, image_size=24)
    for row in range(pairs.num_pairs):
        shape, view = divmod(row, 2)
        assert pairs.shape_index[row] == shape
        elevation, azimuth, light, intensity = image_pairs.view_settings(0, shape, view)
        np.testing.assert_allclose(pairs.viewpoints[row], [elevation, azimuth], rtol=1e-6)
        expected = render.render_voxels(pairs.voxels[shape], 24, elevation=elevation,
                                        azimuth=azimuth, light_direction=light,
                                        light_intensity=intensity)
        np.testing.assert_array_equal(pairs.images[row], expected)
    # Views of one shape differ; so do the same views of different shapes.
    assert not np.array_equal(pairs.images[0], pairs.images[1])
    assert not np.array_equal(pairs.images[0], pairs.images[2])


def test_viewpoints_depend_only_on_seed_shape_and_view():
    grids = _grids(4)
    whole = render_pairs(grids, np.zeros(4, int), ["x"], views_per_shape=2, image_size=16,
                         seed=3, progress=False)
    again = render_pairs(grids, np.zeros(4, int), ["x"], views_per_shape=2, image_size=16,
                         seed=3, progress=False)
    np.testing.assert_array_equal(whole.images, again.images)
    first_two = render_pairs(grids[:2], np.zeros(2, int), ["x"], views_per_shape=2,
                             image_size=16, seed=3, progress=False)
    np.testing.assert_array_equal(first_two.images, whole.images[:4])
    other_seed = render_pairs(grids, np.zeros(4, int), ["x"], views_per_shape=2, image_size=16,
                              seed=4, progress=False)
    assert not np.array_equal(other_seed.viewpoints, whole.viewpoints)
    # Lights vary between views, within the documented ranges.
    settings = [image_pairs.view_settings(0, 0, view) for view in range(20)]
    intensities = [intensity for *_, intensity in settings]
    assert min(intensities) >= 0.75 and max(intensities) <= 1.25
    assert max(intensities) - min(intensities) > 0.2
    turns = [np.degrees(np.arctan2(light[1], light[0])) for _, _, light, _ in settings]
    assert np.ptp(turns) > 30


def test_worker_processes_render_the_same_pictures():
    grids = _grids(18, size=6)  # two tasks of up to 16 shapes
    labels = np.zeros(18, int)
    alone = render_pairs(grids, labels, ["x"], views_per_shape=1, image_size=8, progress=False)
    pooled = render_pairs(grids, labels, ["x"], views_per_shape=1, image_size=8,
                          progress=False, workers=2)
    np.testing.assert_array_equal(alone.images, pooled.images)
    np.testing.assert_array_equal(alone.viewpoints, pooled.viewpoints)


def test_progress_is_reported(capsys):
    render_pairs(_grids(2), [0, 0], ["x"], views_per_shape=2, image_size=8, progress=True)
    assert "rendering 4 pictures at 8x8: 4/4 (100%)" in capsys.readouterr().err


def test_render_voxels_light_keywords():
    grid = np.zeros((8, 8, 8), np.uint8)
    grid[2:6, 2:6, 0:4] = 1
    default = render.render_voxels(grid, 32, elevation=30, azimuth=80)
    np.testing.assert_array_equal(default, render.render_voxels(
        grid, 32, elevation=30, azimuth=80, light_direction=render.key_light_direction(80) * 5))
    mask = np.any(default != BACKGROUND, axis=-1)
    dim = render.render_voxels(grid, 32, elevation=30, azimuth=80, light_intensity=0.5)
    assert dim[mask].mean() < default[mask].mean() - 10
    turned = render.render_voxels(grid, 32, elevation=30, azimuth=80,
                                  light_direction=render.key_light_direction(200))
    assert not np.array_equal(turned, default)
    with pytest.raises(ValueError, match="light_direction must be"):
        render.render_voxels(grid, 32, light_direction=(1, 2))


@pytest.mark.parametrize("kwargs,message", [
    ({"views_per_shape": 0}, "views_per_shape must be a positive integer"),
    ({"image_size": 4}, "image_size must be an integer >= 8"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"workers": 0}, "workers must be a positive integer"),
])
def test_render_pairs_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_pairs(_grids(2), [0, 0], ["x"], progress=False, **kwargs)


def test_render_pairs_rejects_empty_grids_and_bad_labels():
    grids = _grids(3)
    grids[1] = 0
    with pytest.raises(ValueError, match=r"1 of the 3 grids are empty \(rows \[1\]\)"):
        render_pairs(grids, [0, 0, 0], ["x"], progress=False)
    with pytest.raises(ValueError, match=r"voxels must be a non-empty array \[N, R, R, R\]"):
        render_pairs(np.ones((8, 8, 8)), [0], ["x"], progress=False)
    with pytest.raises(ValueError, match=r"labels must index class_names \(1 names\)"):
        render_pairs(_grids(2), [0, 1], ["x"], image_size=8, progress=False)


def test_mesh_pairs_pair_mesh_renders_with_voxelizations(tmp_path, capsys):
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    paths = []
    for name, mesh in (("box", box), ("tall", trimesh.creation.box(extents=(0.3, 0.3, 1.0)))):
        paths.append(str(tmp_path / f"{name}.obj"))
        mesh.export(paths[-1])
    (tmp_path / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")
    pairs = render_mesh_pairs([paths[0], str(tmp_path / "broken.off"), paths[1]], [0, 1, 1],
                              ["box", "tall"], resolution=32, views_per_shape=2, image_size=32,
                              seed=5, progress=False)
    assert "left out broken.off" in capsys.readouterr().err.replace(str(tmp_path) + os.sep, "")
    assert pairs.voxels.shape == (2, 32, 32, 32) and pairs.images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(pairs.labels, [0, 1])
    assert "left out 1 unusable" in pairs.description
    for row in range(4):
        shape = pairs.shape_index[row]
        elevation, azimuth = pairs.viewpoints[row]
        # The viewpoint is keyed on the mesh's position in the list: 0 and 2.
        assert image_pairs.view_settings(5, 2 * shape, row % 2)[:2] == pytest.approx(
            (elevation, azimuth))
        voxel_mask = np.any(render.render_voxels(pairs.voxels[shape], 32, elevation=float(elevation),
                                                 azimuth=float(azimuth)) != BACKGROUND, -1)
        mesh_mask = np.any(pairs.images[row] != BACKGROUND, -1)
        assert (voxel_mask & mesh_mask).sum() / (voxel_mask | mesh_mask).sum() > 0.8
    with pytest.raises(FileNotFoundError, match="missing.obj"):
        render_mesh_pairs([str(tmp_path / "missing.obj")], progress=False)
    with pytest.raises(ValueError, match=r"labels must index class_names \(1 names\)"):
        render_mesh_pairs(paths, [0, 1], ["box"], progress=False)
    with pytest.raises(ValueError, match="class_names is required with labels"):
        render_mesh_pairs(paths, [0, 1], progress=False)
    with pytest.raises(ValueError, match="fill must be one of"):
        render_mesh_pairs(paths, fill="hollow", progress=False)
    unlabelled = render_mesh_pairs(paths[:1], views_per_shape=1, image_size=16, progress=False)
    assert unlabelled.class_names == ("unlabelled",) and unlabelled.labels.tolist() == [0]
    with pytest.raises(ValueError, match="None of the 1 meshes could be voxelized"):
        render_mesh_pairs([str(tmp_path / "broken.off")], progress=False)


# ---------------------------------------------------------------------------------------------
# Saving and loading.
# ---------------------------------------------------------------------------------------------


def _assert_same(first: PairSet, second: PairSet):
    for name in ("images", "shape_index", "voxels", "labels", "viewpoints"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype, name
    assert first.class_names == second.class_names
    assert first.description == second.description


def test_save_load_round_trip(tmp_path):
    pairs = _pairs()
    path = tmp_path / "nested" / "pairs.npz"
    save_pairs(pairs, path)
    _assert_same(load_pairs(path), pairs)
    assert os.listdir(path.parent) == ["pairs.npz"]
    # NaN viewpoints (users' photos) survive too.
    photos = PairSet(pairs.images[:2], [0, 0], pairs.voxels[:1], [0], ("only",),
                     np.full((2, 2), np.nan, np.float32), "photos")
    save_pairs(photos, str(path))
    _assert_same(load_pairs(str(path)), photos)
    assert np.isnan(load_pairs(path).viewpoints).all()


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "pairs.npz"
    save_pairs(_pairs(count=2), path)
    before = path.read_bytes()

    def fail_halfway(handle, **arrays):
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_pairs(_pairs(count=3), path)
    with pytest.raises(OSError, match="disk full"):
        save_pairs(_pairs(count=3), tmp_path / "new.npz")
    assert sorted(os.listdir(tmp_path)) == ["pairs.npz"]
    assert path.read_bytes() == before


def test_load_reports_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; make one with python -m "
                                                "pipelines.render_pairs"):
        load_pairs(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="text.npz' is not a readable .npz file"):
        load_pairs(text)
    pairs = _pairs(count=2)
    partial = tmp_path / "partial.npz"
    np.savez(partial, images=pairs.images, voxels=pairs.voxels)
    with pytest.raises(ValueError, match=r"lacks the arrays \['shape_index', 'labels'"):
        load_pairs(partial)
    arrays = {"images": pairs.images, "shape_index": pairs.shape_index + 5,
              "voxels": pairs.voxels, "labels": pairs.labels, "class_names": np.array(["a", "b"]),
              "viewpoints": pairs.viewpoints, "description": np.array("x"),
              "format": np.array(image_pairs.FORMAT)}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"bad.npz': shape_index must hold rows of voxels, 0 to 1"):
        load_pairs(bad)
    np.savez(bad, **{**arrays, "shape_index": pairs.shape_index, "viewpoints": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"viewpoints must be a float array \[M, 2\] = \[4, 2\]"):
        load_pairs(bad)
    np.savez(bad, **{**arrays, "shape_index": pairs.shape_index, "format": np.array("other/9")})
    with pytest.raises(ValueError, match="has format 'other/9'"):
        load_pairs(bad)


def test_pair_set_checks_its_arrays():
    pairs = _pairs(count=2)
    with pytest.raises(ValueError, match=r"images must be a non-empty uint8 array \[M, H, W, 3\], "
                                         r"got dtype float32"):
        PairSet(pairs.images.astype(np.float32), pairs.shape_index, pairs.voxels, pairs.labels,
                pairs.class_names, pairs.viewpoints, "")
    with pytest.raises(ValueError, match="voxels must hold 0 or 1, found the value 255"):
        PairSet(pairs.images, pairs.shape_index, pairs.voxels * 255, pairs.labels,
                pairs.class_names, pairs.viewpoints, "")
    with pytest.raises(ValueError, match=r"shape_index must be an integer array of shape \[4\]"):
        PairSet(pairs.images, pairs.shape_index[:3], pairs.voxels, pairs.labels,
                pairs.class_names, pairs.viewpoints, "")


def test_contact_sheet_shows_pictures_beside_their_shapes():
    pairs = _pairs(count=3, views=2, image_size=16)
    sheet = pair_contact_sheet.contact_sheet(pairs, count=4, columns=2)
    tile = 96  # 16-pixel pictures enlarged 6x
    assert sheet.shape == (2 * (tile + 2) - 2, 2 * (2 * tile + 8) - 6, 3)
    # The first cell: pair 0 enlarged, then its shape rendered from its viewpoint.
    np.testing.assert_array_equal(sheet[:tile, :tile:6][::6], pairs.images[0])
    elevation, azimuth = (float(value) for value in pairs.viewpoints[0])
    shape_tile = render.render_voxels(pairs.voxels[0], tile, elevation=elevation, azimuth=azimuth)
    np.testing.assert_array_equal(sheet[20:tile, tile + 2:2 * tile + 2], shape_tile[20:])


# ---------------------------------------------------------------------------------------------
# Users' folders.
# ---------------------------------------------------------------------------------------------


def _write_manifest(folder, rows, header=("image", "shape", "label")):
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _user_folder(tmp_path):
    """A folder with PNG/JPEG pictures and .npy/.binvox/.mat/.obj shapes."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "shapes").mkdir()
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :, 0] = 200
    Image.fromarray(wide).save(tmp_path / "photos" / "wide.png")
    Image.fromarray(np.full((30, 30, 3), 90, np.uint8)).save(tmp_path / "photos" / "grey.jpg")
    transparent = np.zeros((16, 16, 4), np.uint8)
    transparent[4:12, 4:12] = (0, 0, 255, 255)
    Image.fromarray(transparent, "RGBA").save(tmp_path / "photos" / "cut_out.png")
    grid = np.zeros((8, 8, 8), np.uint8)
    grid[1:5, 2:6, 0:3] = 1
    np.save(tmp_path / "shapes" / "block.npy", grid)
    coarse = np.zeros((4, 4, 4), np.uint8)
    coarse[1:3, 1:3, 0:2] = 1
    write_binvox(tmp_path / "shapes" / "coarse.binvox", coarse, up_axis="z")
    scipy.io.savemat(tmp_path / "shapes" / "fine.mat", {"instance": np.kron(grid, np.ones((2, 2, 2)))})
    trimesh.creation.box(extents=(1, 1, 2)).export(tmp_path / "shapes" / "box.obj")
    _write_manifest(tmp_path, [
        ("photos/wide.png", "shapes/block.npy", "chair"),
        ("photos/grey.jpg", "shapes/coarse.binvox", "table"),
        ("photos/cut_out.png", "shapes/block.npy", "chair"),
        ("photos/grey.jpg", "shapes/fine.mat", "chair"),
        ("photos/wide.png", "shapes/box.obj", "box"),
    ])
    return grid, coarse


def test_load_pair_folder_reads_every_format(tmp_path):
    grid, coarse = _user_folder(tmp_path)
    pairs = load_pair_folder(tmp_path, 8, 16)
    assert pairs.images.shape == (5, 16, 16, 3) and pairs.voxels.shape == (4, 8, 8, 8)
    # block.npy is listed twice and read once.
    np.testing.assert_array_equal(pairs.shape_index, [0, 1, 0, 2, 3])
    np.testing.assert_array_equal(pairs.voxels[0], grid)
    np.testing.assert_array_equal(pairs.voxels[1], np.kron(coarse, np.ones((2, 2, 2))))
    np.testing.assert_array_equal(pairs.voxels[2], grid)  # the 16^3 .mat, brought down to 8^3
    assert pairs.voxels[3].sum() > 0
    assert pairs.class_names == ("box", "chair", "table")
    np.testing.assert_array_equal(pairs.labels, [1, 2, 1, 0])
    assert np.isnan(pairs.viewpoints).all()
    # The 40x20 picture is padded to a square with the background grey, then resized.
    wide = pairs.images[0]
    np.testing.assert_array_equal(wide[0, 8], BACKGROUND)
    np.testing.assert_array_equal(wide[8, 8], (200, 0, 0))
    # Transparent parts lie over the background grey.
    np.testing.assert_array_equal(pairs.images[2][0, 0], BACKGROUND)
    np.testing.assert_array_equal(pairs.images[2][8, 8], (0, 0, 255))
    assert abs(int(pairs.images[1][8, 8, 0]) - 90) <= 2  # JPEG


def test_load_pair_folder_without_labels(tmp_path):
    _user_folder(tmp_path)
    _write_manifest(tmp_path, [("photos/wide.png", "shapes/block.npy")], header=("shape", "image")[::-1])
    pairs = load_pair_folder(tmp_path, 8, 16)
    assert pairs.class_names == ("unlabelled",) and pairs.labels.tolist() == [0]


@pytest.mark.parametrize("header,rows,error,message", [
    (None, None, FileNotFoundError, r"There is no manifest.csv at .*header line 'image,shape'"),
    ((), [], ValueError, r"manifest.csv is empty; its first line must be the header"),
    (("image", "shape"), [], ValueError, r"lists no pairs: it has a header but no further lines"),
    (("image", "label"), [("photos/wide.png", "x")], ValueError,
     r"line 1: the header has the columns \['image', 'label'\].*\(missing: \['shape'\]\)"),
    (("image", "shape", "lable"), [("photos/wide.png", "shapes/block.npy", "x")], ValueError,
     r"\(unknown: \['lable'\]\)"),
    (("image", "shape"), [("photos/wide.png", "shapes/block.npy", "extra")], ValueError,
     r"line 2: 3 fields, but the header has 2"),
    (("image", "shape"), [("photos/wide.png", "shapes/block.npy"), ("", "shapes/block.npy")],
     ValueError, r"line 3: the image cell is empty"),
    (("image", "shape"), [("photos/wide.png", "shapes/block.npy"), ("photos/nope.png", "shapes/block.npy")],
     FileNotFoundError, r"line 3: image 'photos/nope.png' not found \(looked for .*photos/nope.png'\); "
                        r"paths are relative to"),
    (("image", "shape"), [("photos/wide.png", "shapes/nope.npy")], FileNotFoundError,
     r"line 2: shape 'shapes/nope.npy' not found"),
    (("image", "shape"), [("photos/fake.png", "shapes/block.npy")], ValueError,
     r"line 2: image 'photos/fake.png' .* cannot be read as a picture .*save it as PNG or JPEG"),
    (("image", "shape"), [("photos/wide.png", "shapes/odd.npy")], ValueError,
     r"line 2: shape 'shapes/odd.npy' .* its grid is 6\^3, which cannot be resampled to 8\^3.*"
     r"Fix or replace the file"),
    (("image", "shape"), [("photos/wide.png", "shapes/flat.npy")], ValueError,
     r"line 2: shape 'shapes/flat.npy' .* expected a cubic \[S, S, S\] grid"),
    (("image", "shape"), [("photos/wide.png", "shapes/empty.npy")], ValueError,
     r"line 2: shape 'shapes/empty.npy' .* its grid is empty"),
    (("image", "shape"), [("photos/wide.png", "photos/fake.png")], ValueError,
     r"line 2: shape 'photos/fake.png' has the extension '.png', which is neither a grid"),
    (("image", "shape", "label"), [("photos/wide.png", "shapes/block.npy", "chair"),
                                   ("photos/grey.jpg", "shapes/block.npy", "table")], ValueError,
     r"line 3: shape 'shapes/block.npy' has label 'table', but line 2 gave it 'chair'"),
])
def test_bad_manifests_name_the_line_the_file_and_the_fix(tmp_path, header, rows, error, message):
    _user_folder(tmp_path)
    (tmp_path / "photos" / "fake.png").write_text("not a picture")
    np.save(tmp_path / "shapes" / "odd.npy", np.ones((6, 6, 6), np.uint8))
    np.save(tmp_path / "shapes" / "flat.npy", np.ones((8, 8, 4), np.uint8))
    np.save(tmp_path / "shapes" / "empty.npy", np.zeros((8, 8, 8), np.uint8))
    if header is None:
        os.remove(tmp_path / "manifest.csv")
    elif not header:
        (tmp_path / "manifest.csv").write_text("\n\n")
    else:
        _write_manifest(tmp_path, rows, header)
    with pytest.raises(error, match=message):
        load_pair_folder(tmp_path, 8, 16)


def test_missing_folder_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist or is not a folder"):
        load_pair_folder(tmp_path / "nowhere", 8, 16)
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        load_pair_folder(tmp_path, 0, 16)
    with pytest.raises(ValueError, match="up_axis"):
        load_pair_folder(tmp_path, 8, 16, up_axis="w")


# ---------------------------------------------------------------------------------------------
# Training stream.
# ---------------------------------------------------------------------------------------------


def _take(dataset, count):
    return [(images.numpy(), voxels.numpy()) for images, voxels in dataset.take(count)]


def test_pair_dataset_batches_are_the_pairs_batch_indices_picks():
    import tensorflow as tf

    from tf3dgan.data import pipeline

    pairs = _pairs(count=5, views=2, image_size=8)
    dataset = pair_dataset(pairs, 4, seed=11)
    assert dataset.element_spec[0].shape.as_list() == [4, 8, 8, 3]
    assert dataset.element_spec[1].shape.as_list() == [4, 8, 8, 8]
    assert dataset.element_spec[0].dtype == dataset.element_spec[1].dtype == tf.float32
    assert (dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    batches = _take(dataset, 6)  # 24 pairs drawn from 10: crosses two epoch boundaries
    seen = []
    for step, (images, voxels) in enumerate(batches):
        indices = pipeline.batch_indices(tf.constant(step, tf.int64), 10, 4, 11).numpy()
        seen.extend(indices)
        np.testing.assert_allclose(images, pairs.images[indices] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(voxels, pairs.voxels[pairs.shape_index[indices]])
        assert images.min() >= 0.0 and images.max() <= 1.0
    assert sorted(seen[:10]) == list(range(10))  # the first epoch is a permutation


def test_pair_dataset_is_deterministic_and_resumes():
    pairs = _pairs(count=5, views=2, image_size=8)
    run = _take(pair_dataset(pairs, 3, seed=2), 5)
    again = _take(pair_dataset(pairs, 3, seed=2), 5)
    resumed = _take(pair_dataset(pairs, 3, seed=2, start_step=3), 2)
    other = _take(pair_dataset(pairs, 3, seed=3), 5)
    for first, second in zip(run, again):
        np.testing.assert_array_equal(first[0], second[0])
    for first, second in zip(run[3:], resumed):
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(run, other))


def test_pair_dataset_upsamples_and_rejects_small_sets():
    pairs = _pairs(count=2, views=2, image_size=8)
    _, voxels = _take(pair_dataset(pairs, 2, seed=0, resolution=16), 1)[0]
    assert voxels.shape == (2, 16, 16, 16)
    again = _take(pair_dataset(pairs, 2, seed=0), 1)[0][1]
    np.testing.assert_array_equal(voxels[:, ::2, ::2, ::2], again)
    with pytest.raises(ValueError, match="There are 4 \\(image, shape\\) pairs, fewer than one "
                                         "batch of 5"):
        pair_dataset(pairs, 5, seed=0)
    with pytest.raises(ValueError, match="is not a multiple of 8"):
        pair_dataset(pairs, 2, seed=0, resolution=12)

"""python -m pipelines.prepare, then python -m pipelines.train on its cache."""

import json
import zipfile

import trimesh

from pipelines import prepare as prepare_cli
from pipelines import train as train_cli


def _modelnet_zip(path, empty_class=False):
    with zipfile.ZipFile(path, "w") as archive:
        for class_name, mesh in (("cone", trimesh.creation.cone(0.5, 1.0, sections=8)),
                                 ("box", trimesh.creation.box((1.0, 0.5, 0.3)))):
            for number in range(3):
                text = mesh.copy().apply_scale(1 + 0.2 * number).export(file_type="off")
                archive.writestr(f"{class_name}/train/{class_name}_{number}.off",
                                 text.replace("OFF\n", "OFF", 1))
        archive.writestr("box/train/broken.off", "OFF\n8 12 0\n1 2")
        if empty_class:
            archive.writestr(zipfile.ZipInfo("lamp/"), "")
    return path


def test_prepare_then_train_on_the_cache_with_augmentation(tmp_path, capsys):
    archive = _modelnet_zip(tmp_path / "ModelNet.zip")
    output = tmp_path / "voxels"
    code = prepare_cli.main(["--input", str(archive), "--output", str(output), "--resolution",
                             "16", "--classes", "box,cone", "--workers", "1", "--no_progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "train: 6 shapes (box 3, cone 3)" in printed
    assert (f"Dropped 1 file(s), ignored 0: reasons in {output}/manifest.json\n"
            "  box/train/broken.off: trimesh could not read it as .off") in printed
    assert f"Train with: python -m pipelines.train --data cache --data_path {output}" in printed
    dropped = json.loads((output / "manifest.json").read_text())["dropped"]
    assert [entry["file"] for entry in dropped] == ["box/train/broken.off"]

    code = train_cli.main(["--preset", "smoke", "--workdir", str(tmp_path / "run"), "--data",
                           "cache", "--data_path", str(output), "--augment_rotate", "true",
                           "--augment_flip", "true", "--train_steps", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"Data: {output} [train]: 6 shapes of box, cone at 16^3; 1 files dropped" in printed
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["augment_rotate"] and config["data"]["augment_flip"]
    assert "Trained 2 steps" in printed


def test_prepare_errors_exit_1_with_the_message(tmp_path, capsys):
    archive = _modelnet_zip(tmp_path / "ModelNet.zip", empty_class=True)
    code = prepare_cli.main(["--input", str(archive), "--resolution", "16", "--no_progress"])
    assert code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert "the class folder(s) lamp hold no shape files" in error
    assert "--classes box,cone" in error


def test_a_huge_drop_is_an_error_listing_the_first_files_unless_allow_dropped(tmp_path,
                                                                              capsys):
    archive = _modelnet_zip(tmp_path / "ModelNet.zip")
    with zipfile.ZipFile(archive, "a") as opened:
        for number in range(25):
            opened.writestr(f"cone/train/points_{number:02d}.off",
                            "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    output = tmp_path / "voxels"
    arguments = ["--input", str(archive), "--output", str(output), "--resolution", "16",
                 "--workers", "1", "--no_progress"]
    assert prepare_cli.main(arguments) == 1
    captured = capsys.readouterr()
    error = captured.err
    assert error.startswith(f"error: Too much of {str(archive)!r} could not be used: 26 of its "
                            "32 shape files were dropped, more than half. The dropped files:\n"
                            "  box/train/broken.off: trimesh could not read it as .off")
    named = [line for line in error.splitlines() if line.startswith("  ")]
    assert len(named) == 21 and named[1].startswith("  cone/train/points_00.off: it has no "
                                                    "triangle faces")
    assert named[-1] == f"  ... and 6 more, see {output}/manifest.json"
    assert "--allow_dropped" in error and "Train with" not in captured.out

    assert prepare_cli.main(arguments + ["--allow_dropped"]) == 0
    printed = capsys.readouterr().out
    assert "train: 6 shapes (box 3, cone 3)" in printed
    assert f"Dropped 26 file(s), ignored 0: reasons in {output}/manifest.json" in printed
    named = [line for line in printed.splitlines() if line.startswith("  ")]
    assert len(named) == 21 and named[0].startswith("  box/train/broken.off: ")
    assert named[-1] == f"  ... and 6 more, see {output}/manifest.json"
    assert f"Train with: python -m pipelines.train --data cache --data_path {output}" in printed


def test_train_flags_include_the_augmentation_settings():
    from pipelines import flags

    args = train_cli.parse_args(["--augment_rotate", "yes", "--augment_flip", "false"])
    config = flags.config_from_flags(args)
    assert config.data.augment_rotate is True and config.data.augment_flip is False
    defaults = flags.config_from_flags(train_cli.parse_args([]))
    assert not defaults.data.augment_rotate and not defaults.data.augment_flip

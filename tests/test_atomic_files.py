"""atomic_files: a destination is replaced whole or left as it was."""

import json
import os

import pytest

from tf3dgan import atomic_files


def test_a_complete_write_replaces_the_destination_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic_files.write_json(path, {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert path.read_text().endswith("\n")
    assert os.listdir(path.parent) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_files.atomic_output(path) as handle:
            handle.write(b"half of a new ")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["image.png"]


def test_only_write_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_files.atomic_output(tmp_path / "x", "a"):
            pass

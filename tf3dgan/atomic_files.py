"""Files that appear whole or not at all.

Every file tf3dgan writes for someone else to read (pictures, reports, rendered
pairs, JSON records) is written under a temporary name beside its destination and
moved into place with `os.replace`: a reader (a browser, TensorBoard, a watcher,
a resumed run) never sees a half-written file, and an existing file is replaced
only by a complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb"):
    """Opens a temporary file beside `path`; on a clean exit it becomes `path`.

    Missing parent folders are created. On an exception (including a
    KeyboardInterrupt) the temporary file is removed and `path` is untouched.

    Args:
        path: The destination.
        mode: "wb" or "w" (text, UTF-8).

    Yields:
        The open file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', received {mode!r}.")
    destination = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(destination))
    os.makedirs(folder, exist_ok=True)
    # A unique name: two writers of one destination never share a temporary file.
    temporary = os.path.join(folder, f".{os.path.basename(destination)}.{uuid.uuid4().hex}.tmp")
    # os.open with 0o666 honours the umask, unlike tempfile's private 0o600 files.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(descriptor, mode, encoding=encoding) as handle:
            yield handle
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json(path: str | os.PathLike, value, *, sort_keys: bool = False, default=None) -> Path:
    """Writes `value` as indented JSON (and a final newline) atomically; returns the path."""
    with atomic_output(path, "w") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=sort_keys, default=default) + "\n")
    return Path(path)

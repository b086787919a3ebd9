"""Reading one shape file of a collection into an occupancy grid at the cache's resolution.

Meshes go through :func:`tf3dgan.data.voxelize.voxelize_mesh`; .binvox files are read with
:func:`tf3dgan.data.binvox.read_binvox` and brought to the resolution by an integer factor:
nearest-neighbour upsampling, or downsampling in which a voxel is occupied when any of the
finer voxels it covers is (so thin parts survive; ShapeNet's 128^3 grids become 32^3 or
64^3 this way). ``fill`` applies to meshes; a .binvox grid is taken as it is.

A member of a .zip is read in memory, in every format a plain file can have; the side files
a mesh refers to (an .obj's .mtl, a .gltf's .bin buffers) are read from beside it in the
archive.

This module is what the parallel workers of :mod:`tf3dgan.data.prepare` import: it must not
import TensorFlow, so that each worker starts in about a second.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import zipfile

import numpy as np
import trimesh

from tf3dgan.data.binvox import read_binvox, rotate_to_z_up
from tf3dgan.data.matfile import read_mat_voxels
from tf3dgan.data.layouts import ShapeFile
from tf3dgan.data.voxelize import UnusableShapeError, voxelize_mesh

# Archives opened by this process, kept open across files (each worker has its own).
_OPEN_ARCHIVES: dict[str, zipfile.ZipFile] = {}


@dataclasses.dataclass(frozen=True)
class ReadSettings:
    """How shape files become grids.

    Attributes:
        resolution: Edge R of the grids.
        fill: "solid" or "surface", for meshes.
        up_axis: The shapes' up axis ("x", "y" or "z"), rotated onto our z.
    """

    resolution: int
    fill: str
    up_axis: str


def read_shape(shape: ShapeFile, settings: ReadSettings) -> np.ndarray:
    """Read and voxelize one shape file.

    Args:
        shape: The file, from :func:`tf3dgan.data.layouts.scan`.
        settings: Resolution, fill and up axis.

    Returns:
        uint8 array [R, R, R] of 0/1, axes (x, y, z), z up; never empty.

    Raises:
        UnusableShapeError: naming the file, for a mesh that cannot be voxelized (see
            :func:`tf3dgan.data.voxelize.voxelize_mesh`), an empty .binvox grid, or a grid
            whose size is not an integer multiple or divisor of R.
        ValueError, OSError, zipfile.BadZipFile: for files that cannot be read.
    """
    name = f"{shape.path}:{shape.member}" if shape.member else shape.path
    if shape.member:
        archive = _archive(shape.path)
        data = io.BytesIO(archive.read(shape.member))
        data.name = name  # load_mesh names the file and takes the format from it
        source = data
        resolver = _ArchiveResolver(archive, posixpath.dirname(shape.member))
    else:
        source, resolver = shape.path, None
    if shape.extension in ("mat", "npy"):
        grid = _read_grid_file(shape.extension, source, settings.up_axis)
        if grid.ndim != 3 or len(set(grid.shape)) != 1:
            raise UnusableShapeError(repr(name), f"its grid has shape {grid.shape}; expected a "
                                     "cubic [S, S, S] grid.")
        if not grid.any():
            raise UnusableShapeError(repr(name), "its grid is empty.")
        return fit_resolution(grid, settings.resolution, repr(name))
    if shape.extension == "binvox":
        grid = read_binvox(source, up_axis=settings.up_axis).voxels
        if not grid.any():
            raise UnusableShapeError(
                repr(name), "its .binvox grid is empty (binvox writes empty grids for meshes it "
                "failed on).")
        return fit_resolution(grid, settings.resolution, repr(name))
    return voxelize_mesh(source, settings.resolution, fill=settings.fill,
                         up_axis=settings.up_axis, file_type=shape.extension or None,
                         resolver=resolver)


def _read_grid_file(extension: str, source, up_axis: str) -> np.ndarray:
    """A voxel grid stored as a 3D ShapeNets .mat (key ``instance``) or a NumPy .npy."""
    if extension == "mat":
        return read_mat_voxels(source, up_axis=up_axis)
    grid = np.load(source, allow_pickle=False)
    return rotate_to_z_up((np.asarray(grid) > 0).astype(np.uint8), up_axis)


def fit_resolution(grid: np.ndarray, resolution: int, source: str = "<grid>") -> np.ndarray:
    """Bring a cubic grid to ``resolution`` by an integer factor.

    Args:
        grid: uint8 array [S, S, S] of 0/1.
        resolution: The wanted edge R.
        source: The file, for the error message.

    Returns:
        uint8 [R, R, R]: ``grid`` itself if S == R; each voxel repeated R/S times along each
        axis if R is a multiple of S; if S is a multiple of R, each block of (S/R)^3 voxels
        becomes one voxel, occupied when any of the block is.

    Raises:
        UnusableShapeError: if neither size divides the other.
    """
    size = grid.shape[0]
    if size == resolution:
        return grid
    if size % resolution == 0:
        factor = size // resolution
        blocks = grid.reshape(resolution, factor, resolution, factor, resolution, factor)
        return blocks.max(axis=(1, 3, 5)).astype(np.uint8)
    if resolution % size == 0:
        factor = resolution // size
        for axis in range(3):
            grid = np.repeat(grid, factor, axis=axis)
        return grid
    raise UnusableShapeError(
        source, f"its grid is {size}^3, which cannot be resampled to {resolution}^3 by an "
        f"integer factor; prepare at a resolution that divides {size} or that {size} divides.")


def read_packed(settings: ReadSettings, item: tuple[int, ShapeFile]
                ) -> tuple[int, bytes | None, str | None]:
    """Worker entry point: one file to bit-packed grid bytes, or the reason it was dropped.

    Args:
        settings: As for :func:`read_shape`.
        item: (position in the plan, the shape file).

    Returns:
        (position, ``np.packbits`` of the flattened grid or None, None or the reason the
        file was dropped). Every failure of a single file is caught and reported, so one
        bad file never stops a run over thousands.
    """
    index, shape = item
    try:
        grid = read_shape(shape, settings)
    except UnusableShapeError as error:
        return index, None, error.reason
    except Exception as error:  # noqa: BLE001 - any reader failure drops only this file
        return index, None, f"could not read it: {type(error).__name__}: {error}"
    return index, np.packbits(grid.reshape(-1)).tobytes(), None


def _archive(path: str) -> zipfile.ZipFile:
    archive = _OPEN_ARCHIVES.get(path)
    if archive is None:
        archive = _OPEN_ARCHIVES[path] = zipfile.ZipFile(path)
    return archive


class _ArchiveResolver(trimesh.resolvers.Resolver):
    """trimesh's access to the side files of an archive member, read from the same archive.

    Names are taken relative to the member's folder inside the archive, as a
    ``FilePathResolver`` takes them relative to a file's folder on disk.
    """

    def __init__(self, archive: zipfile.ZipFile, folder: str):
        self.archive = archive
        self.folder = folder.strip("/")

    def get(self, name: str) -> bytes:
        """The bytes of the member ``name`` (relative to the folder); KeyError if missing."""
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        return self.archive.read(posixpath.normpath(
            posixpath.join(self.folder, name.replace("\\", "/"))))

    def keys(self) -> list[str]:
        prefix = f"{self.folder}/" if self.folder else ""
        return [member[len(prefix):] for member in self.archive.namelist()
                if member.startswith(prefix) and not member.endswith("/")]

    def namespaced(self, namespace: str) -> "_ArchiveResolver":
        return _ArchiveResolver(self.archive, posixpath.join(self.folder, namespace))

    def write(self, name: str, data) -> None:
        raise NotImplementedError(f"archive members are only read; cannot write {name!r}.")

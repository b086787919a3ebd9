"""The training grids held away from the GAN (tf3dgan.data.holdout)."""

import numpy as np
import pytest

from tf3dgan.data import holdout
from tf3dgan.data.synthetic import make_synthetic_dataset


def _grids():
    voxels, _ = make_synthetic_dataset(10, resolution=16, seed=0, classes=("chair", "table"))
    return voxels


def test_a_hash_is_the_occupancy_and_the_edge():
    voxels = _grids()[:3].astype(np.float32)
    hashes = holdout.grid_hashes(voxels)
    assert len(set(hashes)) == 3
    # Occupancy is value > 0.5: a soft copy of a grid is the same grid.
    soft = np.where(voxels > 0.5, 0.7, 0.2).astype(np.float32)
    np.testing.assert_array_equal(holdout.grid_hashes(soft), hashes)
    changed = voxels[:1].copy()
    changed[0, 0, 0, 0] = 1 - changed[0, 0, 0, 0]
    assert holdout.grid_hashes(changed)[0] != hashes[0]
    # The same bits at another edge are another grid.
    assert holdout.grid_hashes(np.zeros((1, 8, 8, 8)))[0] != holdout.grid_hashes(np.zeros((1, 4, 4, 32)))[0]


def test_holdout_takes_a_seeded_fraction_of_distinct_grids_and_every_copy():
    grids = _grids()
    voxels = np.concatenate([grids, grids[:5]])  # five grids twice
    chosen = holdout.choose_holdout(voxels, 0.25, seed=1)
    assert len(chosen.hashes) == 5  # round(0.25 x 20 distinct)
    held = chosen.mask(voxels)
    hashes = holdout.grid_hashes(voxels)
    # A grid is held out exactly when its hash is: copies go together.
    for index in range(len(voxels)):
        assert held[index] == (hashes[index] in set(chosen.hashes))
    assert held.sum() >= 5
    np.testing.assert_array_equal(held[20:], held[:5])
    again = holdout.choose_holdout(voxels[::-1], 0.25, seed=1)
    np.testing.assert_array_equal(again.hashes, chosen.hashes)  # the order of the grids does not matter
    assert not np.array_equal(holdout.choose_holdout(voxels, 0.25, seed=2).hashes, chosen.hashes)


@pytest.mark.parametrize("fraction, message", [
    (0.0, r"holdout_fraction must be in \(0, 1\), received 0.0"),
    (1.0, r"must be in \(0, 1\)"),
    (0.01, r"holdout_fraction=0.01 of 20 distinct grids holds out 0, which leaves one side empty"),
    (0.99, r"holds out 20, which leaves one side empty"),
])
def test_a_holdout_that_leaves_a_side_empty_is_refused(fraction, message):
    with pytest.raises(ValueError, match=message):
        holdout.choose_holdout(_grids(), fraction, seed=0)


def test_a_holdout_file_round_trips_and_a_bad_one_is_named(tmp_path):
    chosen = holdout.choose_holdout(_grids(), 0.3, seed=4)
    path = holdout.save_holdout(chosen, tmp_path / holdout.HOLDOUT_FILE)
    loaded = holdout.load_holdout(path)
    np.testing.assert_array_equal(loaded.hashes, chosen.hashes)
    assert (loaded.fraction, loaded.seed) == (0.3, 4)
    assert [p.name for p in tmp_path.iterdir()] == [holdout.HOLDOUT_FILE]  # no temporary file left
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match=r"bad.npz is not a tf3dgan holdout file"):
        holdout.load_holdout(bad)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"text.npz is not a tf3dgan holdout file"):
        holdout.load_holdout(tmp_path / "text.npz")

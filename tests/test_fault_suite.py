"""Every fault at once, kills included (`sheetorders.testing.fault_run`): a short run here, the
long one in `benchmarks/fault_suite.py` (and behind the slow marker)."""

from __future__ import annotations

import pytest

from sheetorders.testing.fault_run import fault_run


def test_every_fault_at_once_places_each_row_once_with_its_own_id(tmp_path):
    result = fault_run(tmp_path, rows=60, seed=11, kills=1)
    print(result)  # the figures, when it fails
    assert not result.duplicates
    assert not result.wrong_ids
    assert not result.lost
    assert not result.unplaced
    assert result.unclear > 0  # the faults did leave adds without a clear answer...
    assert result.uncertain_after_sync < result.unclear  # ...and settling settled some of them


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_every_fault_at_once_many_seeds(tmp_path, seed):
    result = fault_run(tmp_path, rows=60, seed=seed, kills=3)
    print(result)
    assert result.sound

"""search/feasible.py: configurations that cannot run here, per trial and per grid value."""

from __future__ import annotations

import pytest
import torch

from search.device import available as available_devices
from search.feasible import CannotRun, check, check_grid, why_not
from search.grid import GridError, with_defaults


def test_batch_norm_needs_a_full_batch():
    bn = with_defaults({"arch": "cnn", "batch_norm": True, "batch_size": 4000})
    assert "no full batch of the 2000 training images" in why_not(bn, 2000)
    assert why_not(bn, 4000) is None
    plain = with_defaults({"arch": "cnn", "batch_norm": False, "batch_size": 4000})
    assert why_not(plain, 2000) is None  # one partial batch trains fine without BatchNorm
    with pytest.raises(CannotRun, match="batch_size 1 with BatchNorm"):
        check(with_defaults({"network": "batch_norm", "batch_size": 1}), 100)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_cannot_run():
    assert available_devices()[0] == "cpu" and "cuda" not in available_devices()
    assert "device 'cuda' is not available here (available: ['cpu'" in why_not(
        with_defaults({"device": "cuda"}), 2000
    )


def test_a_grid_value_that_never_runs_is_named():
    with pytest.raises(GridError, match="batch_size 4000 can never run: batch_size 4000"):
        check_grid({"batch_size": [4000], "batch_norm": [True]}, 2000, "g.json")
    # 4000 runs without BatchNorm, and 500 with it: every value can run in some combination.
    check_grid({"batch_size": [4000, 500], "batch_norm": [True, False]}, 2000, "g.json")
    if not torch.cuda.is_available():
        tutorial = {"lr": [0.01], "batch_size": [1000], "device": ["cuda", "cpu"]}
        with pytest.raises(GridError, match="device 'cuda' can never run: device 'cuda' is not"):
            check_grid(tutorial, 2000, "g.json")

"""A real optuna-dashboard process reads the study as the search left it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from search.run import main
from tests.conftest import QUICK
from tests.helpers import free_port, wait_http


def test_dashboard_serves_study_trials_and_intermediate_values(in_tmp):
    assert main(["--trials", "2", *QUICK, "--step-images", "500", "--pruner", "none"]) == 0
    port = free_port()
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    proc = subprocess.Popen(
        [str(dashboard), "sqlite:///optuna.db", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        summaries = json.loads(wait_http(base, process=proc))["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["fashion-mnist"]
        detail = json.loads(wait_http(f"{base}/{summaries[0]['study_id']}"))
        assert len(detail["trials"]) == 2
        for trial in detail["trials"]:  # sub-epoch steps: 2,000 images in steps of 500
            assert [v["step"] for v in trial["intermediate_values"]] == [1, 2, 3, 4]
        assert {"lr", "optimizer", "arch"} <= {p["name"] for p in detail["trials"][0]["params"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)

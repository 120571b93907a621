"""A real optuna-dashboard process reads the study as the search left it."""

from __future__ import annotations

import json

from search.viewers import serving, wait_http
from tests.helpers import AWKWARD


def test_dashboard_serves_study_trials_and_intermediate_values(finished):
    cwd, _ = finished
    with serving(
        "optuna-dashboard", ["sqlite:///optuna.db"], "/api/studies", cwd=cwd
    ) as dashboard:
        base = f"{dashboard}/api/studies"
        summaries = json.loads(wait_http(base))["study_summaries"]
        assert [s["study_name"] for s in summaries] == [AWKWARD]
        detail = json.loads(wait_http(f"{base}/{summaries[0]['study_id']}"))
        assert len(detail["trials"]) == 3
        for trial in detail["trials"]:  # sub-epoch steps: 2,000 images in steps of 500
            steps = [v["step"] for v in trial["intermediate_values"]]
            assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 4
        assert len(detail["trials"][0]["intermediate_values"]) == 4  # never pruned
        assert {"lr", "optimizer", "arch"} <= {p["name"] for p in detail["trials"][0]["params"]}

"""Take the README's screenshots from a finished study (run from the study's directory).

    cd STUDY_DIR && PYTHONPATH=REPO python -m docs.screenshots [--storage sqlite:///optuna.db]
        [--mlflow sqlite:///mlflow.db]

Starts ``mlflow ui`` and ``optuna-dashboard`` on free loopback ports (``tests.helpers``),
opens the registered model page and the study page in headless Chromium (Debian's package),
and writes
``docs/mlflow-champion.png`` and ``docs/optuna-dashboard.png`` in this checkout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from search.viewers import CHROMIUM, CHROMIUM_FLAGS, serving

DOCS = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--storage", default="sqlite:///optuna.db")
    p.add_argument("--mlflow", default="sqlite:///mlflow.db")
    p.add_argument("--model", default="fashion-mnist-classifier")
    args = p.parse_args()
    mlflow_ui = ["ui", "--backend-store-uri", args.mlflow]
    with (
        serving("mlflow", mlflow_ui, "/health") as mlflow_url,
        serving("optuna-dashboard", [args.storage], "/api/studies") as dash_url,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{mlflow_url}/#/models/{args.model}")
        page.get_by_text("champion").first.wait_for(timeout=60_000)
        page.screenshot(path=str(DOCS / "mlflow-champion.png"))
        page.goto(f"{dash_url}/dashboard/studies/1")
        # The sidebar's "History" link exists hidden; a drawn plot means the page is there.
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.wait_for_timeout(3000)  # let plotly finish drawing; only a picture depends on it
        page.screenshot(path=str(DOCS / "optuna-dashboard.png"), full_page=True)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

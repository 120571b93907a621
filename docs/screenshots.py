"""Take the README's pictures from a finished study (run from the study's directory).

    cd STUDY_DIR && PYTHONPATH=REPO python -m docs.screenshots [--storage sqlite:///optuna.db]
        [--mlflow sqlite:///mlflow.db] [--model fashion-mnist-classifier]

Starts ``mlflow ui`` and ``optuna-dashboard`` on free loopback ports (``search.viewers``),
opens them in headless Chromium (Debian's package) and writes, in this checkout's docs/:

- ``optuna-dashboard.png``: the study's page (history, intermediate values: ``val_accuracy``);
- ``mlflow-curves.png``: the experiment's trial runs, their ``val_accuracy`` curves in one chart;
- ``mlflow-champion.png``: the registered champion's version page, its alias and tags.

Each picture carries a banner with the study's date and the command that created it (the
study's ``command`` attribute), so a picture always says what it shows.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from search.viewers import CHROMIUM, CHROMIUM_FLAGS, serving

DOCS = Path(__file__).resolve().parent
VIEWPORT = {"width": 1600, "height": 1000}  # wide enough that no panel squeezes the content


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--storage", default="sqlite:///optuna.db")
    p.add_argument("--mlflow", default="sqlite:///mlflow.db")
    p.add_argument("--model", default="fashion-mnist-classifier")
    p.add_argument("--out", type=Path, default=DOCS, help="where the PNGs go (default: docs/)")
    args = p.parse_args()
    with (
        serving("mlflow", ["ui", "--backend-store-uri", args.mlflow], "/health") as mlflow_url,
        serving("optuna-dashboard", [args.storage], "/api/studies") as dash_url,
        sync_playwright() as pw,
    ):
        study = first_study(dash_url)
        banner = caption(study)
        print(banner)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        dashboard(page, dash_url, study["study_id"], banner, args.out / "optuna-dashboard.png")
        curves(page, mlflow_url, study["name"], banner, args.out / "mlflow-curves.png")
        champion(page, mlflow_url, args.model, banner, args.out / "mlflow-champion.png")
        browser.close()
    return 0


def first_study(dash_url: str) -> dict:
    """The dashboard's own account of the first study (name, id, user attributes, trials)."""
    with urllib.request.urlopen(f"{dash_url}/api/studies", timeout=30) as r:
        summary = json.loads(r.read())["study_summaries"][0]
    with urllib.request.urlopen(f"{dash_url}/api/studies/{summary['study_id']}", timeout=60) as r:
        detail = json.loads(r.read())
    return {**summary, **detail, "name": summary["study_name"]}


def caption(study: dict) -> str:
    attrs = {a["key"]: a["value"] for a in study.get("user_attrs", [])}
    started = min(t["datetime_start"] for t in study["trials"] if t.get("datetime_start"))
    command = attrs.get("command", "(command not recorded)")
    return f"study '{study['name']}' of {started[:10]}: {command}"


def stamp(page: Page, text: str) -> None:
    """The banner, fixed at the top of the page, above everything the page draws."""
    page.evaluate(
        """text => {
            const b = document.createElement('div');
            b.textContent = text;
            b.style.cssText = 'position:fixed;top:0;left:0;right:0;z-index:2147483647;' +
              'background:#222;color:#fff;font:14px monospace;padding:4px 8px;';
            document.body.appendChild(b);
        }""",
        text,
    )


def dashboard(page: Page, base: str, study_id: int, banner: str, out: Path) -> None:
    page.goto(f"{base}/dashboard/studies/{study_id}")
    # The sidebar's "History" link exists hidden; a drawn plot means the page is there.
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.get_by_text("val_accuracy").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # let plotly finish drawing; only the picture depends on it
    stamp(page, banner)
    page.screenshot(path=str(out), full_page=True)


def curves(page: Page, base: str, experiment: str, banner: str, out: Path) -> None:
    """The experiment's trial runs in MLflow's chart view: their val_accuracy curves."""
    show_trial_curves(page, base, experiment_id(base, experiment))
    stamp(page, banner)
    page.screenshot(path=str(out))


def experiment_id(base: str, name: str) -> str:
    query = urllib.parse.urlencode({"experiment_name": name})
    url = f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name?{query}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())["experiment"]["experiment_id"]


def show_trial_curves(page: Page, base: str, experiment: str) -> int:
    """Open the chart view of ``experiment`` on its trial runs only (expanded under their parent,
    every one visible, the assistant panel closed) and the val_accuracy charts; returns how
    many curves the val_accuracy line chart draws."""
    trials = urllib.parse.quote("tags.optuna_trial_number LIKE '%'")
    page.goto(
        f"{base}/#/experiments/{experiment}/runs?compareRunsMode=CHART&searchFilter={trials}"
    )
    page.locator("button[data-component-id*='runnamecellrenderer']").first.wait_for(timeout=60_000)
    assistant = page.get_by_role("button", name="Close")
    if assistant.count():
        assistant.first.click()
    page.locator("button[data-component-id*='runnamecellrenderer']").first.click()  # the trials
    page.get_by_test_id("experiment-view-runs-visibility-column-header").click()
    page.get_by_text("Show all runs").click()
    page.get_by_placeholder("Search metric charts").fill("val_accuracy")
    chart = page.locator(".js-plotly-plot").filter(has=page.locator(".scatterlayer")).last
    chart.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)  # let plotly finish drawing; only the picture depends on it
    return chart.locator(".scatterlayer .trace").count()


def champion(page: Page, base: str, model: str, banner: str, out: Path) -> None:
    page.goto(f"{base}/#/models/{model}")
    page.get_by_text("champion").first.wait_for(timeout=60_000)
    page.get_by_role("link", name="Version 1").first.click()
    page.get_by_text("val_accuracy").first.wait_for(timeout=60_000)
    stamp(page, banner)
    page.screenshot(path=str(out), full_page=True)


if __name__ == "__main__":
    raise SystemExit(main())

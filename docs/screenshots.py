"""Take the README's screenshots from a finished study (run from the study's directory).

    python docs/screenshots.py [--storage sqlite:///optuna.db] [--mlflow sqlite:///mlflow.db]

Starts ``mlflow ui`` and ``optuna-dashboard`` on free loopback ports, opens the registered
model page and the study page in headless Chromium (Debian's package) and writes
``docs/mlflow-champion.png`` and ``docs/optuna-dashboard.png`` in this checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import free_port, wait_http  # noqa: E402

DOCS = Path(__file__).resolve().parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--storage", default="sqlite:///optuna.db")
    p.add_argument("--mlflow", default="sqlite:///mlflow.db")
    p.add_argument("--model", default="fashion-mnist-classifier")
    args = p.parse_args()
    bin_dir = Path(sys.executable).parent
    ports = free_port(), free_port()
    servers = [
        subprocess.Popen([str(bin_dir / "mlflow"), "ui", "--backend-store-uri", args.mlflow,
                          "--host", "127.0.0.1", "--port", str(ports[0])]),
        subprocess.Popen([str(bin_dir / "optuna-dashboard"), args.storage, "--host",
                          "127.0.0.1", "--port", str(ports[1])]),
    ]  # fmt: skip
    try:
        mlflow_url, dash_url = (f"http://127.0.0.1:{port}" for port in ports)
        wait_http(f"{mlflow_url}/health", timeout=120, process=servers[0])
        wait_http(f"{dash_url}/api/studies", timeout=120, process=servers[1])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
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
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

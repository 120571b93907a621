"""How long does a run take to exit after its summary? ``python -m search.run`` (which freezes
the garbage collector before it exits, ``search.run.exit_now``) against the same ``main`` exited
plainly, side by side, alternating.

    python -m benchmarks.exit [--runs 2] [-- EXTRA SEARCH.RUN FLAGS]

Each run is a tiny tracked study (one trial of 3,000 images, MLflow on, its default store) in
a fresh directory; the time is from the last line of its summary to the process's end, as
``--budget`` counts it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from benchmarks.baseline import run_env

TINY = "--trials 1 --epochs 1 --train-size 3000 --val-size 1000 --final-epochs 0 --quiet"
WAYS = {
    "python -m search.run (gc frozen)": ["-m", "search.run"],
    "main() exited plainly": ["-c", "import sys; from search.run import main; sys.exit(main())"],
}


def exit_seconds(way: list[str], args: list[str]) -> float:
    """Seconds from the summary's last line to the end of one run's process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, *way, *args]
        p = subprocess.Popen(command, cwd=tmp, env=run_env(), stdout=subprocess.PIPE, text=True)
        last = time.perf_counter()
        for _ in p.stdout:
            last = time.perf_counter()
        p.wait()
        return time.perf_counter() - last


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.exit", description=__doc__)
    p.add_argument("--runs", type=int, default=2, help="runs of each way (default: 2)")
    args = p.parse_args(own)
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        f"{args.runs} runs each, alternating"
    )
    seconds: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(args.runs):
        for name, way in WAYS.items():
            seconds[name].append(exit_seconds(way, TINY.split() + extra))
    for name, values in seconds.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name}: {statistics.median(values):.2f} s from summary to exit ({runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does a long-running worker grow with the trial count? Peak RSS over N small trials.

    python -m benchmarks.memory [--trials 50]

Runs one in-process study (``search.run.main``, --epochs 1 --train-size 2000, no MLflow) in a
temp dir while a thread samples this process's RSS once a second together with the number of
finished trials; prints RSS at every tenth trial and the peak (``ru_maxrss``). Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import threading

import optuna
import torch


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    p.add_argument("--trials", type=int, default=50)
    args = p.parse_args(argv)
    from search.run import main as run

    samples: dict[int, float] = {}
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/optuna.db"

        def sample() -> None:
            while not stop.wait(1.0):
                study = optuna.load_study(study_name="memory", storage=storage)
                done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
                samples[done] = rss_mb()

        # Create the study first: the sampling thread and the run would otherwise race to
        # create the schema of the fresh SQLite file.
        optuna.create_study(study_name="memory", storage=storage, direction="maximize")
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        flags = ["--epochs", "1", "--train-size", "2000", "--no-mlflow", "--quiet"]
        code = run(
            ["--trials", str(args.trials), "--storage", storage, "--study", "memory", *flags]
        )
        stop.set()
        thread.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hardware: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"{args.trials} trials, --epochs 1 --train-size 2000, one process, exit {code}")
    for n in sorted(samples):
        if n and (n % 10 == 0 or n == max(samples)):
            print(f"  after {n:3d} finished trials: RSS {samples[n]:7.1f} MB")
    print(f"peak RSS: {peak:.1f} MB")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

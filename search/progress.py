"""Progress on the terminal: one bar over trials, the current step and best-so-far beside it,
then the final fit's epochs.

``--quiet`` turns it off (scripts, CI logs). Optuna's per-trial INFO lines are silenced
(``search.quiet``): the bar says the same in one line. It follows trials as one of the
objective's hooks, and the end of the study as one of the study's (``search.hooks``).
"""

from __future__ import annotations

import optuna
from tqdm import tqdm

from search.hooks import StudyHooks, TrialHooks
from search.pareto import most_accurate
from search.reconnect import stderr_notice
from search.train import StepMetrics


class Progress(TrialHooks, StudyHooks):
    def __init__(self, total: int, done: int, steps: int, quiet: bool) -> None:
        self.steps, self.quiet = steps, quiet
        self.bar = (
            None if quiet else tqdm(total=total, initial=done, unit="trial", dynamic_ncols=True)
        )
        self.best: float | None = None

    def step(self, trial: optuna.Trial, m: StepMetrics) -> None:
        if self.bar is None:
            return
        trial_number = trial.number
        best = f" best {self.best:.4f}" if self.best is not None else ""
        self.bar.set_postfix_str(
            f"trial {trial_number} step {m.step}/{self.steps} val {m.val_accuracy:.4f}{best}"
        )

    def final_epoch(self, metrics: StepMetrics, epochs: float) -> None:
        m = metrics
        if self.bar is not None:  # epochs in tenths under --budget: "epoch 28.8/28.8", not 29
            done = f"{round(m.epoch, 1):g}/{epochs:g}"
            accuracy = f"train_accuracy {m.train_accuracy:.4f}"
            self.bar.set_postfix_str(f"final fit epoch {done} {accuracy}")

    def rerun_started(self, trial: optuna.trial.FrozenTrial) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"re-running trial #{trial.number} on another seed")

    def rerun_done(self, trial: optuna.trial.FrozenTrial, seed: int, value: float) -> None:
        self.note(f"re-run of trial #{trial.number}: val_accuracy {value:.4f}")

    def trials_done(self, study: optuna.Study, finished: int) -> None:
        """After a trial: ``finished`` of the study's trials are done."""
        best = most_accurate(study)
        if best is not None:
            self.best = best.values[0]
        if self.bar is not None:
            self.bar.n = finished
            self.bar.set_postfix_str(f"best {self.best:.4f}" if self.best is not None else "")
            self.bar.refresh()

    def waiting(self, line: str) -> None:
        """What this worker waits for while other workers finish (see ``search.recovery``)."""
        if self.bar is not None:
            self.bar.set_postfix_str(line)

    def storage_wait(self, kind: str, line: str) -> None:
        """A database server that went away (``search.reconnect``): the wait on the bar, its
        end as a line above it; without a bar, on stderr."""
        if self.bar is None:
            stderr_notice(kind, line)
        elif kind == "back":
            self.bar.write(line)
        else:
            self.bar.set_postfix_str(line)

    def note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

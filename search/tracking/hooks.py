"""MLflow behind the search's hooks (``search.hooks``): the only way the search reaches it.

``open_for_run`` connects (one line and exit 2 if it cannot) and gives ``MLflowHooks``, the
study's hooks: the parent run joined or started as the study opens, the trials MLflow missed
logged, ``TrialTracking`` around every trial (a child run, per-step metrics, the checkpoint of
a trial that beats the study), dead workers' runs ended after each trial; at the end the
re-runs, the final fit's run, the results and pictures, the champion registered (or found
already registered), a trial's checkpoint handed back; the runs ended as the run closes; and
the summary's MLflow line. Every call goes through ``Guarded``: MLflow failing turns tracking
off for the rest of the process, never the search.
"""

from __future__ import annotations

import optuna
import torch
from torch import nn

from models import ViewAverage, standalone
from models.user import source_hash
from search.config import RunConfig, params
from search.hooks import (
    Completed,
    Crowned,
    FinalFit,
    Results,
    StudyHooks,
    TrialHooks,
    Weights,
)
from search.process import me
from search.space import full_params
from search.tracking.client import Tracking, open_tracking
from search.tracking.registry import Entry
from search.train import StepMetrics
from search.urls import TrackingError, first_line, mask_url
from search.viewers import mlflow_ui_command

PARENT = "mlflow_parent_run_id"  # the study's user attribute: the round's parent run
# The study's user attribute naming the final fit's run, who fits it, and once trained, that its
# weights are kept there (a process that dies before registering leaves it to the next).
FINAL = "mlflow_final_fit"


def open_for_run(config: RunConfig, device: str) -> MLflowHooks:
    """MLflow for a run: its own parent run (tags and the settings as params), or in a child of
    ``--workers`` the supervisor's. Any failure is one line for the user (``TrackingError``)."""
    parent = config.workers.parent_run_id
    try:
        tracking = open_tracking(config.tracking, parent)
    except Exception as exc:  # MLflow raises many types; one line for the user
        uri = config.tracking.uri
        line = f"--tracking-uri {mask_url(uri or 'default')}: {first_line(exc, uri)}"
        raise TrackingError(line) from None
    hooks = MLflowHooks(tracking, config.tracking.experiment)
    if parent is None:
        study = config.study
        tags = {
            "storage": mask_url(study.storage),
            "sampler": study.sampler,
            "pruner": study.pruner,
            "seed": str(study.seed),
            "torch_version": torch.__version__,
            "device": device,
        }
        if study.model:  # a user's network: which source it was, exactly
            tags["model_sha256"] = source_hash(study.model)
        settings = {**params(config), "tracking_uri": mask_url(tracking.uri)}
        hooks.parent = (study.name, tags, settings)  # started once the study is open
    return hooks


class TrialTracking(TrialHooks):
    """A child run per trial (its id in the trial's ``mlflow_run_id``), per-step metrics, and
    the weights of a trial that beats the study (any worker can then register it)."""

    def __init__(self, tracking: Tracking) -> None:
        self.runs, self.checkpoints = tracking.runs, tracking.checkpoints
        self.health = tracking.health

    def started(self, trial: optuna.Trial, params: dict) -> None:
        self.health.trial = trial.number
        run_id = self.runs.start_trial(trial, params)
        if run_id is not None:
            trial.set_user_attr("mlflow_run_id", run_id)

    def step(self, trial: optuna.Trial, metrics: StepMetrics) -> None:
        self.runs.log_step(trial, metrics)

    def ended(self, trial: optuna.Trial, state: str, value: float | None, killed: bool) -> None:
        self.runs.end_trial(trial, state, value, killed)
        self.health.trial = None

    def completed(self, done: Completed) -> None:
        run_id = self.runs.trials.get(done.trial.number)  # none if tracking failed before it
        if done.beats_study and run_id is not None:
            self.checkpoints.save(run_id, done.spec, done.state)


class MLflowHooks(StudyHooks):
    """The study in MLflow: see the module's docstring."""

    def __init__(self, tracking: Tracking, experiment: str) -> None:
        self.tracking, self.experiment = tracking, experiment
        self.runs, self.registry = tracking.runs, tracking.registry
        self.parent: tuple | None = None  # (study name, tags, params) of a parent run to start

    # --- the study --------------------------------------------------------------------------

    def joined(self, study: optuna.Study) -> None:
        """Under the claim lock: the study's parent run while it is RUNNING (processes of other
        machines working on this study now, each a child under one parent), else a new parent
        run, recorded on the study. A ``--workers`` child has its supervisor's already."""
        if self.parent is None:
            return
        current = study.user_attrs.get(PARENT)
        if current and self.runs.is_running(current):
            self.runs.attach(current)
            return
        self.runs.start_parent(*self.parent)
        if self.runs.parent_id:
            study.set_user_attr(PARENT, self.runs.parent_id)

    def resumed(self, study: optuna.Study, quiet: bool) -> None:
        """The study's finished trials that MLflow missed (its server was down, or an earlier
        run had --no-mlflow), logged now from the study's record, said in one line."""
        logged = self.runs.backfill(study)
        if logged and not quiet:
            more = ", ..." if len(logged) > 10 else ""
            numbers = ", ".join(f"#{n}" for n in logged[:10]) + more
            print(f"MLflow: logged {len(logged)} trial(s) it had missed ({numbers})")

    def trial_hooks(self) -> list[TrialHooks]:
        return [TrialTracking(self.tracking)]

    def after_trial(self, study: optuna.Study) -> None:
        self.runs.end_orphans(study)

    def worker_tracking(self) -> tuple[str | None, str | None]:
        return self.runs.parent_id, self.tracking.uri

    # --- the end of the study ---------------------------------------------------------------

    def taken_over(self, study: optuna.Study, holder: str) -> None:
        """The final fit's run that ``holder`` left RUNNING when it died: ended KILLED."""
        record = study.user_attrs.get(FINAL) or {}
        if record.get("owner") == holder and not record.get("registered"):
            self.runs.end_killed(record["run_id"])

    def rerun_done(self, trial: optuna.trial.FrozenTrial, seed: int, value: float) -> None:
        self.runs.log_rerun(trial.number, full_params(trial), seed, value)

    def registered(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Weights | None:
        version = self.registry.is_champion(study.study_name, trial.number)
        if version is None:
            return None
        shipped = self.registry.load(version)
        if shipped is None:  # MLflow failed on the way: fit it again
            return None
        note = f"(registered champion version {version.version}, fitted by an earlier run: no "
        return network_of(shipped), note + "new final fit)"

    def weights(self, trial: optuna.trial.FrozenTrial) -> Weights | None:
        model = self.tracking.checkpoints.load(trial.user_attrs.get("mlflow_run_id", ""))
        return None if model is None else (model, "(best trial's checkpoint from MLflow)")

    def fitted(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Weights | None:
        """The final fit of ``trial`` kept in its run by a process that died before
        registering it: its run is this process's final fit from now on."""
        record = study.user_attrs.get(FINAL) or {}
        kept = record.get("fitted") and not record.get("registered")
        if not kept or record.get("trial") != trial.number:
            return None
        model = self.tracking.checkpoints.load(record["run_id"])
        if model is None:
            return None
        self.runs.adopt_final(record["run_id"])
        note = record["note"].removesuffix(")")
        owner = record["owner"]
        died = f"fitted by {owner}, which died before registering it: not trained again"
        return model, f"{note}; {died})"

    def final_started(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, params: dict, epochs: float
    ) -> None:
        self.runs.start_final(trial.number, params, epochs)
        if self.runs.final_id:
            record = {"run_id": self.runs.final_id, "trial": trial.number, "owner": me()}
            study.set_user_attr(FINAL, record)

    def final_fitted(self, study: optuna.Study, fit: FinalFit) -> None:
        """The trained final fit's weights kept in its run, and that said on the study."""
        if not self.runs.final_id:
            return
        state = {k: v.detach().cpu() for k, v in fit.model.state_dict().items()}
        views = getattr(fit.model, "views", 1)  # a ViewAverage says how many it averages
        self.tracking.checkpoints.save(self.runs.final_id, fit.spec, state, views)
        record = study.user_attrs.get(FINAL) or {}
        if not self.tracking.health.lost and record.get("run_id") == self.runs.final_id:
            study.set_user_attr(FINAL, {**record, "fitted": True, "note": fit.note})

    def final_epoch(self, metrics: StepMetrics, epochs: float) -> None:
        self.runs.log_final_epoch(metrics)

    def results(self, study: optuna.Study, results: Results) -> None:
        """The parent run's results: tables, and with a champion its pictures, per-class
        accuracy and Optuna's plots; the final fit's run gets its test accuracy and ends."""
        if results.matrix is None:
            self.runs.log_results(results.metrics, files=results.files)
            return
        from search.figures import optuna_html, per_class  # plotly: only when tracking

        page, _ = optuna_html(study)
        self.runs.log_results(
            results.metrics,
            files=results.files,
            figures=results.figures,
            dicts={"per_class_accuracy.json": per_class(results.matrix)},
            texts={"optuna_plots.html": page},
        )
        self.runs.end_final(results.metrics["test_accuracy"])

    def register(self, crowned: Crowned) -> str | None:
        """The champion logged under the parent run and registered (``registry``)."""
        splits = crowned.splits
        shipped = standalone(crowned.model, splits.mean, splits.std)
        example = (splits.test[0][:4].cpu() * splits.std + splits.mean).numpy()
        runs = (self.runs.parent_id, self.runs.final_id)
        entry = Entry(crowned.study, crowned.best, shipped, crowned.test_accuracy, example, runs)
        line = self.registry.register(entry, crowned.forced)
        record = crowned.study.user_attrs.get(FINAL) or {}
        if line is not None and record.get("run_id") == self.runs.final_id:
            crowned.study.set_user_attr(FINAL, {**record, "registered": True})
        return line

    # --- the close ---------------------------------------------------------------------------

    def closed(self, study: optuna.Study, status: str | None) -> None:
        """Every MLflow run this process opened, ended. The parent run, which processes working
        on the study together share, is ended by the one that ended the study (or was
        interrupted), not by one that left the end to another (``status`` None)."""
        self.runs.end_final_killed()
        self.runs.end_orphans(study)
        if status is not None:
            self.runs.end_parent(status)

    def lost(self) -> None:
        """The storage server stayed away: this process's MLflow runs end (its trial's run
        FAILED by the objective, the rest KILLED)."""
        self.runs.end_final_killed()
        self.runs.end_parent("KILLED")

    def summary_line(self, registered: str) -> str:
        uri, health = mask_url(self.tracking.uri), self.tracking.health
        if health.lost:
            missing = ", ".join(missed_words(health.missed)) or "nothing yet"
            back = "with space freed" if health.full else "with the server up"
            return (
                f"MLflow: FAILED {health.lost}\nMLflow is missing: {missing}; "
                f"re-run this command {back} to log them (exit status 1)"
            )
        ui = f"open it: {uri}" if uri.startswith("http") else f"open it: {mlflow_ui_command(uri)}"
        line = f"MLflow: experiment {self.experiment!r} at {uri}    {ui}"
        return f"{line}\n{registered}" if registered else line

    def failed(self) -> bool:
        return bool(self.tracking.health.lost)


def network_of(shipped: nn.Module) -> nn.Module:
    """A registered standalone model without its ``normalize`` layer: splits are normalized.
    A shipped ``ViewAverage`` (``models.export``) comes back as ours, around the network."""
    if type(shipped).__name__ == ViewAverage.__name__:
        return ViewAverage(network_of(shipped.net))
    return nn.Sequential(*list(shipped.children())[1:])


# What each skipped tracking call would have logged, in a person's words.
MISSED = {
    "start_parent": "the parent run",
    "is_running": "the parent run",
    "attach": "the parent run",
    "start_trial": "trial runs",
    "log_step": "trial runs",
    "end_trial": "trial runs",
    "end_orphans": "trial runs",
    "backfill": "trial runs",
    "save": "the best trial's checkpoint",
    "log_rerun": "the re-runs",
    "start_final": "the final fit's run",
    "log_final_epoch": "the final fit's run",
    "end_final": "the final fit's run",
    "adopt_final": "the final fit's run",
    "end_killed": "the final fit's run",
    "end_final_killed": "the final fit's run",
    "log_results": "the results (tables, pictures)",
    "register": "the champion's registration",
    "is_champion": "the champion's registration",
    "champion": "the champion's registration",
    "end_parent": "the parent run's end",
    "load": "the weights kept in MLflow",
}


def missed_words(calls) -> list[str]:
    return list(dict.fromkeys(MISSED.get(c, c) for c in calls))

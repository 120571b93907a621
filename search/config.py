"""The run's configuration: parsed from the command line once, validated, frozen, passed down in
parts (``config.study``, ``config.training``, ...), each function taking the group it needs.

Every field carries its own command-line flag and help text, so ``search.cli`` builds the
parser, ``--help`` shows these defaults and MLflow records ``params(config)``; the few fields
that are no flag (``internal``) are what ``--workers`` sets for its children, which receive
their whole configuration as JSON in the environment (``to_json``/``from_json``), not as a
command line to parse again. Field names are the project's one vocabulary; a field's flag is
its name with dashes unless it says otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from data.splits import TEST_SIZE, VAL_SIZE
from search.budget import FINAL_SHARE, PLATEAU_EPOCHS
from search.reconnect import RECONNECT_WAIT
from search.storage import HEARTBEAT_INTERVAL
from search.urls import mask_url

STORAGE_ENV = "FASHION_SEARCH_STORAGE"  # --storage's default; how --workers hands the URL over
DEFAULT_STUDY = "fashion-mnist"
TRIALS = 50  # on 2 CPU cores (bf16) its trials take about 2x the article's training
# One epoch per trial: on 2 CPU cores 50 pruned trials then take ~5 minutes, and a
# configuration's one-epoch rank predicts its rank after the longer final fit (Measured).
EPOCHS = 1
STEP_IMAGES = 5_000  # a tenth of an epoch: a bad trial is pruned after ~2 s on 2 CPU cores
# The final fit's length: the plateau a --budget's final fit is given (search.budget), with the
# regularizers that length switches on (search.recipe). A shorter fit wastes what the trials
# found: with 5 epochs the default study (0.933) was no better than the fixed recipe trained
# for the study's own time (0.933-0.936), with 15 it was behind (0.9311 against 0.9334). With
# 48 the default study took 7.7-8.1x the article's time on 2 CPU cores and reached 0.9499 and
# 0.9483 (seeds 0 and 1) against that recipe's 0.9485 and 0.9472 (Measured).
FINAL_EPOCHS = PLATEAU_EPOCHS
# On a GPU the final fit is cheap: 15 epochs of the GPU space's champion took 16 s on an H100
# (test 0.9325; 20 epochs, 21 s, gave 0.9303 in another run: within run-to-run noise).
FINAL_EPOCHS_CUDA = 15
RERUNS = 3  # top trials re-run before the final fit: enough to catch a lucky first place
POLL_SECONDS = 2.0  # a waiting worker looks at the study again this often; a read, no more


def option(default: Any, help: str, flag: str | None = None) -> Any:
    """A config field with its command-line flag: ``help`` may say ``{default}``; ``flag``
    overrides ``--name-with-dashes``. How a flag is read is ``search.cli.READ``'s."""
    return field(default=default, metadata={"help": help, "flag": flag})


def internal(default: Any) -> Any:
    """A config field that is no flag: set by ``--workers`` in its children's configuration."""
    return field(default=default, metadata={"help": None, "flag": None, "internal": True})


def is_flag(f) -> bool:
    return not f.metadata.get("internal", False)


@dataclass(frozen=True)
class StudyConfig:
    name: str = option(
        DEFAULT_STUDY,
        f"study name (default: {{default}}, or {DEFAULT_STUDY}-grid-<file> in grid mode)",
        flag="--study",
    )
    storage: str = option(
        "sqlite:///optuna.db",
        "Optuna storage URL: sqlite:///F, postgresql://..., mysql+pymysql://..., journal:F "
        f"(default: ${STORAGE_ENV} or {{default}})",
    )
    reconnect_wait: float = option(
        RECONNECT_WAIT,
        "seconds a worker waits for a database server that went away (a restart, a failover) "
        "before it stops, its trial left to the others (default: {default:g})",
    )
    trials: int | None = option(
        TRIALS, "finished trials wanted in the study (default: {default}; with --budget, no limit)"
    )
    budget: float | None = option(
        None,
        "wall-clock limit for the whole run, final model included, e.g. 600s, 10m, 1h; no "
        "trial starts that cannot finish in what is left (default: none)",
    )
    timeout: float | None = option(None, "seconds after which no new trial starts")
    sampler: str = option("tpe", "default: {default}, or grid when --grid is given")
    grid: str | None = option(
        None, "JSON or YAML file mapping parameter names to lists (grid mode)"
    )
    space: str | None = option(
        None,
        "a space file (YAML or JSON) in W&B's sweep syntax: the ranges to sample (method, "
        "metric, run_cap, early_terminate, parameters; docs/search.md); a plain map of names "
        "to lists is a grid",
    )
    model: str | None = option(
        None,
        "your own network: PATH.py:NAME or package.module:NAME, an nn.Module class or a "
        "function returning one; its keyword parameters are searchable (--space gives ranges)",
    )
    pruner: str = option("successive-halving", "default: {default} (none in grid mode)")
    max_latency: float | None = option(
        None,
        "only configurations whose exported network answers in at most MS milliseconds per "
        "image (median, batch 1, one CPU thread) are trained and can become the champion",
    )
    max_params: int | None = option(
        None, "only configurations of at most N parameters are trained and can win"
    )
    pareto: str | None = option(
        None,
        "latency or params: a two-objective study, val_accuracy up and the cost down; the "
        "summary prints its Pareto front, optuna-dashboard draws it",
    )
    champion_trial: int | None = option(
        None,
        "on a finished study: fit and register trial N (another point of its Pareto front) "
        "instead of the winner",
    )
    seed: int = option(0, "seeds the split, the sampler and every trial (default: {default})")
    warm_start: bool = option(
        True,
        "do not enqueue the seed article's CNN as the first trial of a new study",
        flag="--no-warm-start",
    )


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = option(EPOCHS, "epochs per trial, the pruner's full budget (default: {default})")
    step_images: int = option(
        STEP_IMAGES,
        "training images per step: validation accuracy is reported, and a trial may be pruned, "
        "after every step (default: {default:,}; grid mode: one epoch)",
    )
    final_epochs: int | None = option(
        FINAL_EPOCHS,
        "train the winning configuration again for N epochs on train + validation; that is "
        "the champion (default: {default}, on a GPU 15, grid mode 0; with --budget, as many "
        "as fit in what the trials leave of it; 0 = the best trial's own weights)",
    )
    final_share: float = option(
        FINAL_SHARE,
        "with --budget, the share of it kept for the final fit from the start; the trials use "
        "the rest (default: {default})",
    )
    precision: str = option(
        "auto",
        "auto (bf16 autocast where the CPU has native bf16, AVX512-BF16 or AMX; fp32 elsewhere "
        "and on a GPU), fp32 or bf16 (default: {default}); weights and the champion stay fp32",
    )
    reruns: int = option(
        RERUNS,
        "before the final fit, train the top K trials' configurations once more on another "
        "seed and choose the best mean (default: {default}; grid mode 0; 0 = the best trial)",
    )


@dataclass(frozen=True)
class DataConfig:
    device: str = option("auto", "one of auto, cpu, cuda, mps (default: auto = cuda, mps, cpu)")
    data_dir: str | None = option(None, "directory with the four Fashion-MNIST IDX files")
    train_size: int | None = option(
        None, "train on a stratified subset of N images (default: all 60,000 minus --val-size)"
    )
    val_size: int = option(
        VAL_SIZE, "validation images split off the 60,000 (default: {default:,}, the tutorials')"
    )
    test_size: int = option(
        TEST_SIZE,
        "evaluate the champion on a stratified subset of N held-out test images (default: all "
        "{default:,}; fewer only for quick smoke runs: the figure to compare is the whole set's)",
    )


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = option(
        None,
        "MLflow tracking URI (default: $MLFLOW_TRACKING_URI or MLflow's default)",
        flag="--tracking-uri",
    )
    experiment: str | None = option(None, "MLflow experiment (default: the study name)")
    registered_model: str = option(
        "fashion-mnist-classifier", "model registry name (default: {default})"
    )
    enabled: bool = option(True, "run without MLflow tracking", flag="--no-mlflow")


@dataclass(frozen=True)
class WorkersConfig:
    workers: int = option(1, "local worker processes sharing the study (default: {default})")
    threads: int | None = option(
        None, "torch CPU threads per worker (default: CPU cores / workers)"
    )
    trials_only: bool = option(
        False,
        "run trials only and leave the end of the study (re-runs, final fit, champion) to a "
        "later run of the same command: for the tasks of a cluster's job array",
    )
    heartbeat: int = option(
        HEARTBEAT_INTERVAL,
        "seconds between a running trial's heartbeats on a PostgreSQL/MySQL study; a trial "
        "silent for 3 of them is taken as a dead worker's (default: {default})",
    )
    poll_seconds: float = option(
        POLL_SECONDS,
        "how often a process waiting for other workers' trials looks at the study again "
        "(default: {default})",
    )
    worker: bool = internal(False)  # a --workers child: run trials, leave the end to it
    parent_run_id: str | None = internal(None)  # the supervisor's MLflow run
    deadline: float | None = internal(None)  # the supervisor's --budget, as a time.time()


@dataclass(frozen=True)
class OutputConfig:
    quiet: bool = option(False, "no progress bar, no library chatter: the summary only")
    artifact_dir: str | None = option(
        None,
        "Optuna artifact store (pictures of the best trials and the champion) for "
        "optuna-dashboard --artifact-dir (default: optuna-artifacts/ beside a file-based study, "
        "else in the working directory)",
    )


@dataclass(frozen=True)
class RunConfig:
    study: StudyConfig = field(default_factory=StudyConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def grid_mode(self) -> bool:
        return self.study.grid is not None


# (RunConfig attribute, --help section, class), in --help's order.
SECTIONS = (
    ("study", "study", StudyConfig),
    ("training", "training", TrainingConfig),
    ("data", "data and device", DataConfig),
    ("tracking", "tracking", TrackingConfig),
    ("workers", "parallel workers", WorkersConfig),
    ("output", "output", OutputConfig),
)


def flag_of(f) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def dest_of(f) -> str:
    """The name a flag's value goes by outside the config: MLflow params, ``--help``."""
    return flag_of(f).removeprefix("--no-").removeprefix("--").replace("-", "_")


def default_of(f) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


def group_fields(config: RunConfig):
    """``(group object, field)`` for every option of ``config``."""
    for attribute, _, _ in SECTIONS:
        group = getattr(config, attribute)
        for f in fields(group):
            yield group, f


def params(config: RunConfig) -> dict[str, Any]:
    """The settings as MLflow params: every visible option by its flag's name, URLs masked,
    unset ones left out."""
    out = {}
    for group, f in group_fields(config):
        value = getattr(group, f.name)
        if f.metadata["help"] is None or value is None:
            continue
        out[dest_of(f)] = mask_url(value) if f.name in ("storage", "uri") else value
    return out


def to_json(config: RunConfig) -> str:
    """The whole configuration as JSON (URLs included: for a child's environment only)."""
    return json.dumps(asdict(config))


def from_json(text: str) -> RunConfig:
    """The inverse of ``to_json``."""
    groups = json.loads(text)
    return RunConfig(**{attribute: cls(**groups[attribute]) for attribute, _, cls in SECTIONS})


def storage_default() -> str:
    return os.environ.get(STORAGE_ENV, StudyConfig.storage)

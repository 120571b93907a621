"""MLflow end to end: a real ``mlflow server`` on loopback, the CLI in a subprocess, then the
HTTP API, a download of the champion model, and a headless-Chromium look at the UI."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pytest
import torch
from mlflow import MlflowClient

from data import CLASSES
from search.run import main
from search.viewers import CHROMIUM, CHROMIUM_FLAGS, serving, wait_http
from tests.helpers import (
    BAD,
    GOOD,
    KILLABLE,
    QUICK,
    THREADS,
    Forked,
    forked,
    in_process,
    kill_mid_trial,
    load,
    mlflow_server,
)

TRACKED = [a for a in QUICK if a != "--no-mlflow"]


@pytest.fixture(scope="module")
def searched(server, tmp_path_factory):
    """One tracked 3-trial study with a one-epoch final fit, shared by the assertions below;
    its champion is scored on the whole test set, which the download tests check again. No
    pruner: all three trials complete, so the re-runs always have a choice to make (with one,
    two of three trials were sometimes pruned and the re-run checks had nothing to check)."""
    cwd = tmp_path_factory.mktemp("study")
    flags = [*TRACKED, "--final-epochs", "1", "--test-size", "10000", "--tracking-uri", server]
    flags += ["--pruner", "none"]
    done = forked(["--trials", "3", *flags], cwd)
    assert done.returncode == 0, done.stderr
    return cwd, done.stdout, done.stderr


def test_parent_and_child_runs_match_the_storage(server, searched):
    cwd = searched[0]
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("fashion-mnist")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "optuna_trial_number" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {
        "study",
        "storage",
        "sampler",
        "pruner",
        "seed",
        "git_commit",
        "torch_version",
        "device",
    } <= parent.data.tags.keys()
    assert parent.data.params["trials"] == "3" and parent.info.status == "FINISHED"
    assert "test_accuracy" in parent.data.metrics
    study = load(f"sqlite:///{cwd / 'optuna.db'}", "fashion-mnist")
    by_id = {t.user_attrs["mlflow_run_id"]: t for t in study.get_trials()}
    for run in children:
        trial = by_id[run.info.run_id]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna_trial_number"] == str(trial.number)
        assert run.data.tags["optuna_state"] == trial.state.name
        assert run.info.status == "FINISHED"
        assert {k: str(v) for k, v in trial.params.items()}.items() <= run.data.params.items()
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        assert [m.value for m in history] == [
            trial.intermediate_values[s] for s in sorted(trial.intermediate_values)
        ]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "results")}
    assert {
        "results/confusion_matrix.png",
        "results/per_class_accuracy.json",
        "results/test_samples.png",
        "results/optuna_plots.html",
        "results/fashion-mnist-trials.csv",
    } <= artifacts


def test_final_fit_is_its_own_run_and_the_champion_names_it(server, searched):
    cwd = searched[0]
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("fashion-mnist")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'final-fit'")
    assert len(runs) == 1
    final = runs[0]
    study = load(f"sqlite:///{cwd / 'optuna.db'}", "fashion-mnist")
    best = study.trials[study.user_attrs["winner"]["trial"]]
    assert final.data.tags["source_trial"] == str(best.number)
    assert final.data.params["final_epochs"] == "1" and final.data.params["train_images"] == "2500"
    assert final.data.params["views"] == "1"  # a short fit: no crop/flip, one view
    assert {k: str(v) for k, v in best.params.items()}.items() <= final.data.params.items()
    assert final.info.status == "FINISHED" and "mlflow.parentRunId" in final.data.tags
    epochs = client.get_metric_history(final.info.run_id, "train_loss")
    assert [m.step for m in epochs] == [1]
    version = client.get_model_version_by_alias("fashion-mnist-classifier", "champion")
    assert version.tags["final_fit_run_id"] == final.info.run_id
    assert version.tags["trial_number"] == str(best.number)
    assert float(version.tags["test_accuracy"]) == final.data.metrics["test_accuracy"]


def test_the_top_trials_re_runs_are_runs_and_the_summary_names_the_winner(server, searched):
    cwd, out = searched[0], searched[1]
    study = load(f"sqlite:///{cwd / 'optuna.db'}", "fashion-mnist")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    line = next(line for line in out.splitlines() if line.startswith("winner: "))
    assert len(complete) >= 2, "the shared study has nothing to re-run: its checks cannot fail"
    reruns = study.user_attrs["reruns"]
    assert sorted(reruns) == sorted(str(t.number) for t in complete)  # 3 trials: all in the top
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("fashion-mnist")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name LIKE 'rerun-%'")
    assert sorted(r.data.tags["source_trial"] for r in runs) == sorted(reruns)
    for run in runs:
        assert run.data.metrics["val_accuracy"] == reruns[run.data.tags["source_trial"]][0]
        assert run.info.status == "FINISHED" and "mlflow.parentRunId" in run.data.tags
    winner = study.user_attrs["winner"]
    values = {t.number: (t.value + reruns[str(t.number)][0]) / 2 for t in complete}
    assert winner["trial"] == max(values, key=lambda n: (values[n], study.trials[n].value))
    assert winner["runs"] == 2 and winner["mean"] == pytest.approx(values[winner["trial"]])
    assert line.startswith(f"winner: trial #{winner['trial']} chosen over #")
    assert line.endswith(f"+- {winner['spread']:.4f} over 2 runs)")


def test_champion_downloads_and_reproduces_test_accuracy(server, searched, raw):
    client = MlflowClient(server)
    version = client.get_model_version_by_alias("fashion-mnist-classifier", "champion")
    logged = float(version.tags["test_accuracy"])
    assert "[0, 1]" in version.description and "Ankle boot" in version.description
    mlflow.set_tracking_uri(server)
    model = mlflow.pytorch.load_model("models:/fashion-mnist-classifier@champion")
    images = raw.test_images.unsqueeze(1).float() / 255  # what ToTensor gives
    with torch.no_grad():
        predicted = torch.cat(
            [model(images[i : i + 1000]).argmax(1) for i in range(0, 10000, 1000)]
        )
    accuracy = (predicted == raw.test_labels).double().mean().item()
    assert accuracy == pytest.approx(logged, abs=1e-4)


def test_the_champion_moves_for_a_better_study_and_stays_for_a_worse_one(server, tmp_path, capsys):
    """Deterministic both ways: a study of one bad trial registers the first version, one
    good trial (a far better validation accuracy) takes the alias, another bad one does not."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    client = MlflowClient(server)

    def study_of(name: str, params: dict) -> str:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.enqueue_trial(params)
        assert (
            main(
                [
                    "--trials",
                    "1",
                    "--study",
                    name,
                    "--storage",
                    storage,
                    *TRACKED,
                    "--pruner",
                    "none",
                    "--tracking-uri",
                    server,
                    "--experiment",
                    "alias",
                    "--registered-model",
                    "alias-model",
                ]
            )
            == 0
        )
        return capsys.readouterr().out

    study_of("first-bad", BAD)
    first = client.get_model_version_by_alias("alias-model", "champion")
    assert first.tags["study"] == "first-bad"
    study_of("good", GOOD)
    better = client.get_model_version_by_alias("alias-model", "champion")
    assert better.tags["study"] == "good" and better.version != first.version
    assert float(better.tags["val_accuracy"]) > float(first.tags["val_accuracy"]) + 0.2
    out = study_of("second-bad", BAD)
    assert "champion unchanged" in out
    assert client.get_model_version_by_alias("alias-model", "champion").version == better.version
    assert len(client.search_model_versions("name='alias-model'")) == 2


def test_pruned_trial_run_has_tag_and_its_epochs(server, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="pruning", storage=storage, direction="maximize")
    for params in [GOOD] * 5 + [BAD]:
        study.enqueue_trial(params)
    args = [
        "--trials",
        "6",
        "--study",
        "pruning",
        "--storage",
        storage,
        *TRACKED,
        "--pruner",
        "median",
        "--epochs",
        "3",
        "--step-images",
        "2000",  # one step an epoch
        "--reruns",
        "0",  # five equal GOOD trials: their re-runs (searched's case) would add three fits
        "--tracking-uri",
        server,
        "--experiment",
        "pruning",  # its own experiment and model: the searched study's are read by others
        "--registered-model",
        "pruning-model",
    ]
    assert main(args) == 0
    pruned = [t for t in load(storage, "pruning").get_trials() if t.state.name == "PRUNED"]
    assert pruned, "the bad trial was not pruned"
    client = MlflowClient(server)
    run = client.get_run(pruned[0].user_attrs["mlflow_run_id"])
    assert run.data.tags["optuna_state"] == "PRUNED" and run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == sorted(pruned[0].intermediate_values) and len(steps) < 3


def test_browser_shows_champion_in_mlflow_ui(server, searched, tmp_path):
    """Headless Chromium (Debian's package, installed by set-up) opens the model page."""
    assert shutil.which(CHROMIUM), "chromium is missing: run `make install`"
    from playwright.sync_api import sync_playwright

    shot = Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / "mlflow-champion.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server}/#/models/fashion-mnist-classifier")
        page.get_by_text("champion").first.wait_for(timeout=60_000)
        assert page.get_by_text("Version 1").count() >= 1
        page.screenshot(path=str(shot))
        browser.close()
    assert shot.stat().st_size > 10_000


def test_a_tiny_budget_ends_on_time_and_still_registers_a_champion(server, tmp_path):
    """A study that must end within 40 s, re-runs, final fit and registration included, with
    no --final-epochs: the final fit trains as many epochs as fit in what the trials left. Its
    first trial is the cheap GOOD network, so a trial completes however busy the machine is (a
    random first trial may be too big to finish, and then there is no champion to register);
    whether a final fit also fits in is the machine's speed, and the champion says which."""
    budget = 40  # seconds: start-up, a few trials, their re-runs, the final fit, registering
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="budget", storage=storage, direction="maximize").enqueue_trial(
        GOOD
    )
    at = TRACKED.index("--final-epochs")
    quick = TRACKED[:at] + TRACKED[at + 2 :]  # no --final-epochs: the budget decides
    args = [*quick, "--budget", f"{budget}s", "--study", "budget"]
    args += ["--registered-model", "budget-model", "--tracking-uri", server]
    done = forked(args, tmp_path)
    elapsed = done.seconds  # the run's own life, from its process's start
    assert done.returncode == 0, done.stderr
    assert f"ended by --budget {budget} s" in done.stdout
    assert elapsed <= budget, f"the run took {elapsed:.1f} s of a {budget} s budget: {done.stdout}"
    trials = load(storage, "budget").get_trials()
    assert trials[0].state.name == "COMPLETE", "the cheap first trial did not complete"
    assert all(t.state.name != "RUNNING" for t in trials)
    client = MlflowClient(server)
    version = client.get_model_version_by_alias("budget-model", "champion")
    assert version.tags["study"] == "budget"
    final = version.tags["final_fit_run_id"]
    fitted = re.search(r"final fit of trial #\d+: ([\d.]+) epochs on train", done.stdout)
    if fitted:
        run = client.get_run(final)
        assert run.info.run_name == "final-fit"
        assert run.data.params["final_epochs"] == fitted.group(1)
        steps = [m.step for m in client.get_metric_history(final, "train_loss")]
        planned = math.ceil(float(fitted.group(1)))
        if "followed --budget's clock" in done.stdout:  # the time ran out before the epochs
            assert steps == list(range(1, len(steps) + 1)) and len(steps) <= planned
        else:
            assert steps == list(range(1, planned + 1))
    else:
        assert final.startswith("none") and "no time left for a final fit" in done.stdout


def test_quiet_means_quiet(searched):
    """--quiet: the summary on stdout and nothing else, no library chatter on either stream."""
    _, out, err = searched
    assert err == "", err
    assert "Successfully registered" not in out and "Created version" not in out
    assert out.splitlines()[0].startswith("study 'fashion-mnist': ")
    assert "test_accuracy (held-out 10,000 images): " in out  # the whole test set


USER_SCRIPT = """
import json, sys
import mlflow, torch
import torch.nn.functional as F

model = mlflow.pytorch.load_model("models:/fashion-mnist-classifier@champion")
images, labels = torch.load("test.pt")
model.eval()
with torch.no_grad():
    accuracy = (model(images).argmax(1) == labels).double().mean().item()
model.train()
model.to("cpu")
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
for i in range(0, 256, 64):  # a few fine-tuning steps
    optimizer.zero_grad()
    F.cross_entropy(model(images[i : i + 64]), labels[i : i + 64]).backward()
    optimizer.step()
roots = tuple(sys.argv[1] + f"/{package}/" for package in ("models", "data", "search"))
ours = sorted(name for name, m in list(sys.modules.items())
              if (getattr(m, "__file__", None) or "").startswith(roots))
print(json.dumps({"accuracy": accuracy, "type": type(model).__module__, "ours": ours,
                  "user_packages": sorted(n for n in ("models", "data", "search")
                                          if n in sys.modules)}))
"""


def test_champion_loads_in_a_project_with_its_own_models_data_and_search(
    server, searched, raw, tmp_path
):
    """Only torch and mlflow: a user's own ``models``/``data``/``search`` packages come first
    on the path and refuse to be imported, and no file of this project is imported either."""
    from tests.helpers import ROOT

    for name in ("models", "data", "search"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s {name}')")
    (tmp_path / "use_champion.py").write_text(USER_SCRIPT)
    images = raw.test_images.unsqueeze(1).float() / 255  # what ToTensor gives
    torch.save((images, raw.test_labels), tmp_path / "test.pt")
    env = {**os.environ, "MLFLOW_TRACKING_URI": server, "PYTHONPATH": str(tmp_path)}
    env["OMP_NUM_THREADS"] = str(THREADS)  # torch's share of the cores, as in every test process
    done = subprocess.run(
        [sys.executable, "use_champion.py", str(ROOT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ours"] == [] and result["user_packages"] == []
    assert result["type"] == "torch.nn.modules.container"
    version = MlflowClient(server).get_model_version_by_alias(
        "fashion-mnist-classifier", "champion"
    )
    assert result["accuracy"] == pytest.approx(float(version.tags["test_accuracy"]), abs=1e-4)


def test_served_champion_answers_classes_names_and_probabilities(server, searched, raw):
    """A real ``mlflow models serve`` on 127.0.0.1, real test images over HTTP."""
    bin_dir = str(Path(sys.executable).parent)  # uvicorn is started by name
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    served = [
        "models",
        "serve",
        "-m",
        "models:/fashion-mnist-classifier@champion",
        "--env-manager",
        "local",
    ]
    images = (raw.test_images[:20].unsqueeze(1).float() / 255).numpy()
    with serving("mlflow", served, "/ping", env=env, timeout=180) as base:
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            rows = json.loads(response.read())["predictions"]
    mlflow.set_tracking_uri(server)
    model = mlflow.pytorch.load_model("models:/fashion-mnist-classifier@champion").eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).argmax(1).tolist()
    assert [r["class_index"] for r in rows] == expected
    assert [r["class_name"] for r in rows] == [CLASSES[i] for i in expected]
    for row in rows:
        assert len(row["probabilities"]) == 10 and sum(row["probabilities"]) == pytest.approx(1)
        assert max(row["probabilities"]) == row["probabilities"][row["class_index"]]


def test_dashboard_shows_the_pictures_of_the_best_trial_and_the_champion(searched):
    """optuna-dashboard with --artifact-dir serves the PNGs uploaded beside the study."""
    cwd = searched[0]
    args = ["sqlite:///optuna.db", "--artifact-dir", "optuna-artifacts"]
    with serving("optuna-dashboard", args, "/api/studies", cwd=cwd) as base:
        summaries = json.loads(wait_http(f"{base}/api/studies"))["study_summaries"]
        study_id = summaries[0]["study_id"]
        detail = json.loads(wait_http(f"{base}/api/studies/{study_id}"))
        best = load(f"sqlite:///{cwd / 'optuna.db'}", "fashion-mnist").best_trial
        trial = next(t for t in detail["trials"] if t["number"] == best.number)
        on_trial = {a["filename"]: a for a in trial["artifacts"]}
        assert {"validation_confusion_matrix.png", "validation_samples.png"} <= on_trial.keys()
        on_study = {a["filename"] for a in detail["artifacts"]}
        assert {"confusion_matrix.png", "test_samples.png"} <= on_study
        artifact = on_trial["validation_confusion_matrix.png"]["artifact_id"]
        png = wait_http(f"{base}/artifacts/{study_id}/{trial['trial_id']}/{artifact}")
        assert png.startswith(b"\x89PNG")


def test_a_tracking_server_that_dies_costs_seconds_and_a_later_run_logs_what_it_missed(tmp_path):
    """The MLflow server killed after two trials: one warning line, the trials go on, the
    summary says what MLflow is missing, exit 1 (MLflow's own retries would wait minutes a
    call; the communicate timeout below is far shorter). The same command with the server back
    logs the missed trials from the study's record and registers the champion."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [*TRACKED, *KILLABLE, "--trials", "3", "--final-epochs", "1", "--study", "blink"]
    args += ["--registered-model", "blink-model"]
    home = tmp_path / "mlflow"
    home.mkdir()
    with mlflow_server(home) as server:
        uri = server.ready()
        run = Forked([*args, "--tracking-uri", uri], tmp_path)
        while sum(s in ("COMPLETE", "PRUNED") for s in _states(storage, "blink")) < 2:
            assert run.poll() is None, run.communicate()
            time.sleep(0.1)
    with pytest.raises(OSError):  # the server is gone, not merely one of its workers
        urllib.request.urlopen(uri + "/health", timeout=5)
    out, err = run.communicate(timeout=240)
    assert run.returncode == 1, err
    warned = [line for line in err.splitlines() if line.startswith("warning: MLflow")]
    assert len(warned) == 1 and re.search(r"failed (at trial #\d|in \w+)", warned[0]), err
    assert "Traceback" not in err
    assert "MLflow is missing: " in out and "re-run this command" in out
    study = load(storage, "blink")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 3
    parent = study.user_attrs["mlflow_parent_run_id"]  # left RUNNING: its server was gone
    with mlflow_server(home) as server:
        uri = server.ready()
        client = MlflowClient(uri)
        assert client.get_run(parent).info.status == "RUNNING"
        again = forked([*args, "--tracking-uri", uri], tmp_path)
        assert again.returncode == 0, again.stderr
        # The same round of the study: its parent run rejoined, and ended by the run that
        # ended the study; no second parent.
        assert load(storage, "blink").user_attrs["mlflow_parent_run_id"] == parent
        assert client.get_run(parent).info.status == "FINISHED"
        experiment = client.get_experiment_by_name("blink").experiment_id
        runs = client.search_runs([experiment], max_results=1000)
        assert [r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags] == [parent]
        numbered = [r for r in runs if "optuna_trial_number" in r.data.tags]
        trial_runs = {r.data.tags["optuna_trial_number"]: r for r in numbered}
        assert sorted(trial_runs, key=int) == [str(t.number) for t in study.trials]
        for t in study.trials:
            r = trial_runs[str(t.number)]
            assert r.info.status != "RUNNING" and r.data.tags["optuna_state"] == t.state.name
            history = client.get_metric_history(r.info.run_id, "val_accuracy")
            assert sorted(m.step for m in history) == sorted(t.intermediate_values), t.number
        champion = client.get_model_version_by_alias("blink-model", "champion")
        assert champion.tags["study"] == "blink"


def _states(storage: str, name: str) -> list[str]:
    try:
        return [t.state.name for t in load(storage, name).get_trials()]
    except KeyError:  # not created yet
        return []


def test_an_interrupted_trial_ends_its_run_killed_and_the_resume_logs_its_retry(server, tmp_path):
    """SIGTERM mid-trial with MLflow on: the trial ends FAIL in the study and its MLflow run
    KILLED (not FAILED: nothing was wrong with it), the parent KILLED; the same command
    retries the trial under a new parent and leaves no run RUNNING."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [*TRACKED, *KILLABLE, "--trials", "2", "--study", "killed-trial"]
    args += ["--tracking-uri", server, "--registered-model", "killed-trial-model"]
    victim = Forked(args, tmp_path)
    number = kill_mid_trial(victim, storage, "killed-trial", sig=signal.SIGTERM)
    assert victim.returncode == 130, victim.communicate()
    client = MlflowClient(server)
    trial = load(storage, "killed-trial").get_trials()[number]
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert trial.state.name == "FAIL" and run.info.status == "KILLED"
    assert run.data.tags["optuna_state"] == "FAIL"
    first_parent = load(storage, "killed-trial").user_attrs["mlflow_parent_run_id"]
    assert client.get_run(first_parent).info.status == "KILLED"
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    experiment = client.get_experiment_by_name("killed-trial").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    retry = [
        t
        for t in load(storage, "killed-trial").trials
        if t.system_attrs.get("failed_trial") == number
    ]
    assert len(retry) == 1 and client.get_run(retry[0].user_attrs["mlflow_run_id"])


def test_sigterm_during_the_final_fit_ends_every_run_and_the_same_command_finishes(
    server, tmp_path
):
    """SIGTERM once the final fit has logged an epoch: exit 130, the summary names the stage,
    no MLflow run of this process is left RUNNING (the final fit's and the parent KILLED);
    the same command then fits and registers the champion."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="term", storage=storage, direction="maximize").enqueue_trial(
        GOOD
    )
    args = [*TRACKED, "--trials", "1", "--final-epochs", "12", "--study", "term"]
    args += ["--registered-model", "term-model", "--tracking-uri", server]
    client = MlflowClient(server)
    proc = Forked(args, tmp_path)
    while not (fits := _final_fits(client, "term")) or not client.get_metric_history(
        fits[0].info.run_id, "train_loss"
    ):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted during the final fit" in out
    experiment = client.get_experiment_by_name("term").experiment_id
    runs = client.search_runs([experiment])
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    statuses = {r.info.run_name.split("-")[0]: r.info.status for r in runs}
    assert statuses["final"] == "KILLED" and statuses["term"] == "KILLED"  # and the parent
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert client.get_model_version_by_alias("term-model", "champion").tags["study"] == "term"


# Where each stage of the end begins: the signal is sent to this process as it starts.
STAGE_STARTS = {
    "the re-runs of the top trials": ("search.winner", "decide"),
    "the test evaluation": ("search.finish", "evaluate_and_predict"),
    "the pictures": ("search.finish", "pictures"),
    "the registration": ("search.tracking.hooks", "MLflowHooks.register"),
}


@pytest.mark.parametrize("stage", list(STAGE_STARTS))
def test_sigterm_at_each_stage_of_the_end_ends_every_run_and_the_same_command_finishes(
    server, tmp_path, monkeypatch, stage
):
    """A real SIGTERM to the run as the stage begins (the final fit's case is above): exit
    130, the summary names the stage, no MLflow run is left RUNNING; the same command then
    registers the champion."""
    import importlib

    name = "stage-" + stage.split()[1]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize").enqueue_trial(GOOD)
    args = [*TRACKED, "--trials", "1", "--final-epochs", "1", "--study", name]
    args += ["--registered-model", f"{name}-model", "--tracking-uri", server]
    module, path = STAGE_STARTS[stage]
    owner = importlib.import_module(module)
    *owners, attribute = path.split(".")
    for part in owners:
        owner = getattr(owner, part)
    original = getattr(owner, attribute)

    def signalled(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, before the stage's work
        return original(*a, **k)

    monkeypatch.setattr(owner, attribute, signalled)
    first = in_process(args, tmp_path)
    assert first.returncode == 130, first.stderr
    assert f"interrupted during {stage}" in first.stdout and "Traceback" not in first.stderr
    client = MlflowClient(server)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert runs and [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    monkeypatch.setattr(owner, attribute, original)
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    champion = client.get_model_version_by_alias(f"{name}-model", "champion")
    assert champion.tags["study"] == name


def _final_fits(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], "attributes.run_name = 'final-fit'")
    return [r for r in runs if r.info.status == "RUNNING"]


def test_the_pictures_promises_hold_in_a_real_browser(server, searched):
    """What docs.screenshots pictures, checked: optuna-dashboard's study page names the value
    ``val_accuracy`` (not "Objective 0"), and MLflow's chart view of the trial runs draws more
    than one trial's val_accuracy curve (the same steps the picture is taken with)."""
    from playwright.sync_api import sync_playwright

    from docs.screenshots import VIEWPORT, experiment_id, show_trial_curves

    cwd = searched[0]
    with (
        serving("optuna-dashboard", ["sqlite:///optuna.db"], "/api/studies", cwd=cwd) as dash,
        sync_playwright() as p,
    ):
        study_id = json.loads(wait_http(f"{dash}/api/studies"))["study_summaries"][0]["study_id"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{dash}/dashboard/studies/{study_id}")
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.get_by_text("val_accuracy").first.wait_for(timeout=60_000)  # fails if never shown
        assert page.get_by_text("Objective 0").count() == 0
        curves = show_trial_curves(page, server, experiment_id(server, "fashion-mnist"))
        browser.close()
    assert curves >= 2, f"{curves} val_accuracy curve(s) in MLflow's chart view"

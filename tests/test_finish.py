"""search/finish.py under real crashes: a run SIGKILLed at the end of its study (during the
final fit, during the registration), then the same command at once, as an operator would:
the gone holder's claim is taken over without waiting for its lease, the champion is
registered, no MLflow run is left RUNNING, and a final fit that had finished is not trained
again. And the exit status when a run ends a study with no champion."""

from __future__ import annotations

import socket
import time

import optuna
from mlflow import MlflowClient

from tests.helpers import GOOD, QUICK, Forked, in_process

TRACKED = [a for a in QUICK if a != "--no-mlflow"]


def study_with_one_good_trial(tmp_path, name: str) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize").enqueue_trial(GOOD)


def runs_of(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found is not None else []


def final_fits(client: MlflowClient, experiment: str) -> list:
    return [r for r in runs_of(client, experiment) if r.info.run_name == "final-fit"]


def test_a_run_killed_during_the_final_fit_is_finished_at_once_by_the_same_command(
    server, tmp_path
):
    """SIGKILL once the final fit has logged an epoch; the same command at once takes the end
    over (its holder is a dead process of this machine, its lease still running), fits and
    registers the champion, ends the dead fit's run KILLED, and leaves nothing RUNNING."""
    name = "killed-fit"
    study_with_one_good_trial(tmp_path, name)
    args = [*TRACKED, "--trials", "1", "--final-epochs", "12", "--study", name]
    args += ["--registered-model", f"{name}-model", "--tracking-uri", server]
    client = MlflowClient(server)
    victim = Forked(args, tmp_path)
    while not (fits := final_fits(client, name)) or not client.get_metric_history(
        fits[0].info.run_id, "train_loss"
    ):
        assert victim.poll() is None, victim.communicate()
        time.sleep(0.1)
    victim.kill()
    victim.wait(timeout=60)
    started = time.monotonic()
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 120  # not the 60 s lease and then some: at once
    holder = f"{socket.gethostname()}:{victim.pid}"
    assert f"left unfinished by {holder}, which is gone" in again.stdout
    champion = client.get_model_version_by_alias(f"{name}-model", "champion")
    assert champion.tags["study"] == name
    runs = runs_of(client, name)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    statuses = sorted(r.info.status for r in final_fits(client, name))
    assert statuses == ["FINISHED", "KILLED"]  # the dead one's, and the one that finished
    assert champion.tags["final_fit_run_id"] in {r.info.run_id for r in runs}


def test_a_run_killed_during_the_registration_is_registered_by_the_same_command_untrained(
    server, tmp_path
):
    """SIGKILL as the registration sets the champion's alias (the model version already
    logged): the same command at once registers the champion from the final fit the dead run
    had finished and kept, trains no second one, and leaves nothing RUNNING."""
    name = "killed-registration"
    study_with_one_good_trial(tmp_path, name)
    args = [*TRACKED, "--trials", "1", "--final-epochs", "1", "--study", name]
    args += ["--registered-model", f"{name}-model", "--tracking-uri", server]
    victim = Forked(args, tmp_path, kill_at="mlflow:MlflowClient.set_registered_model_alias")
    victim.wait(timeout=300)
    assert victim.returncode == -9, victim.communicate()
    client = MlflowClient(server)
    assert client.search_model_versions(f"name='{name}-model'")  # logged, then killed
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "which died before registering it: not trained again" in again.stdout
    champion = client.get_model_version_by_alias(f"{name}-model", "champion")
    fits = final_fits(client, name)
    assert len(fits) == 1 and champion.tags["final_fit_run_id"] == fits[0].info.run_id
    assert fits[0].data.metrics["test_accuracy"] == float(champion.tags["test_accuracy"])
    assert [r.info.run_name for r in runs_of(client, name) if r.info.status == "RUNNING"] == []


def test_a_study_ended_with_no_champion_exits_1_and_says_why(in_tmp):
    """Every trial pruned (a diverging learning rate): the study ended, nobody else ends it,
    and there is no champion: exit status 1, not 0."""
    storage = f"sqlite:///{in_tmp / 'optuna.db'}"
    study = optuna.create_study(study_name="none", storage=storage, direction="maximize")
    study.enqueue_trial({**GOOD, "optimizer": "sgd", "momentum": 0.9, "lr": 1e4})
    done = in_process(["--trials", "1", "--study", "none", *QUICK], in_tmp)
    assert done.returncode == 1, done.stderr
    assert "no champion: no trial of the study has completed (exit status 1)" in done.stdout

"""A database server that blinks under a worker: which errors are retried, how long, what the
worker says; and, for real, a private PostgreSQL restarted (or stopped for good) mid-trial."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import optuna
import pytest
from sqlalchemy import create_engine, orm, text
from sqlalchemy.exc import IntegrityError, OperationalError

from search.reconnect import Reconnect, StorageLost, disconnect_of, is_disconnect, lost_in
from search.storage import open_storage
from tests.helpers import (
    KILLABLE,
    QUICK,
    PrivateMariaDB,
    PrivatePostgres,
    load,
    running_trial,
    start,
)

SECRET = "pw-never-shown"  # trust auth ignores it; here to prove it is masked


def refused() -> OperationalError:
    """A real refused connection, as SQLAlchemy raises it (nothing listens on port 1)."""
    engine = create_engine("postgresql://postgres@127.0.0.1:1/x")
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("port 1 answered")


def duplicate_key(tmp_path) -> IntegrityError:
    engine = create_engine(f"sqlite:///{tmp_path / f'{time.monotonic_ns()}.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1), (1)"))
    except IntegrityError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the duplicate key was accepted")


def as_optuna_raises(exc: Exception) -> optuna.exceptions.StorageInternalError:
    """What ``RDBStorage`` makes of a SQLAlchemy error (``raise ... from e``)."""
    try:
        raise optuna.exceptions.StorageInternalError("An exception is raised...") from exc
    except optuna.exceptions.StorageInternalError as wrapped:
        return wrapped


def test_a_lost_connection_is_retried_and_bad_data_is_not(tmp_path):
    lost = refused()
    assert is_disconnect(lost) and is_disconnect(as_optuna_raises(lost))
    assert "refused" in str(disconnect_of(as_optuna_raises(lost)))  # the driver's own words
    assert not is_disconnect(duplicate_key(tmp_path))
    assert not is_disconnect(as_optuna_raises(duplicate_key(tmp_path)))
    assert not is_disconnect(ValueError("Cannot tell a FAIL trial."))
    assert not is_disconnect(sqlite3.OperationalError("no such table"))  # not SQLAlchemy's


class Blinking:
    """A database call that loses its connection ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.error = failures, 0, refused()

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise as_optuna_raises(self.error)
        return "answer"


def test_a_blink_costs_retries_and_says_so_once_it_starts_and_once_it_ends():
    policy, told = Reconnect(f"postgresql://u:{SECRET}@db/x", wait=30), []
    policy.notify = lambda kind, line: told.append((kind, line))
    call = Blinking(failures=2)
    assert policy.call("get_trial", call) == "answer"
    assert call.calls == 3
    assert [kind for kind, _ in told] == ["start", "wait", "back"]
    assert all(SECRET not in line and "u:***@db" in line for _, line in told)
    assert "refused" in told[0][1] and "reachable again" in told[-1][1]


def test_past_the_wait_the_storage_is_lost_and_no_later_call_waits_again():
    policy = Reconnect(f"postgresql://u:{SECRET}@db/x", wait=0.3)
    policy.notify = lambda kind, line: None
    began = time.monotonic()
    with pytest.raises(StorageLost) as info:
        policy.call("get_trial", Blinking(failures=1000))
    assert 0.3 <= time.monotonic() - began < 5
    message = str(info.value)
    assert message.startswith("--storage postgresql://u:***@db/x: unreachable for 0 s")
    assert "--reconnect-wait 0.3" in message and SECRET not in message and "\n" not in message
    later = Blinking(failures=0)
    with pytest.raises(StorageLost):
        policy.call("get_trial", later)
    assert later.calls == 0


def test_other_errors_pass_through_at_once(tmp_path):
    policy, error = Reconnect("postgresql://db/x", wait=30), duplicate_key(tmp_path)

    def constraint():
        raise as_optuna_raises(error)

    began = time.monotonic()
    with pytest.raises(optuna.exceptions.StorageInternalError):
        policy.call("set_trial_param", constraint)
    assert time.monotonic() - began < 0.5 and not policy.lost


def test_ctrl_c_stops_a_wait_for_the_server_at_once(pg_url):
    """Each attempt of a server's storage call is whole (``HeldRDBStorage``), the wait between
    attempts is not: Ctrl-C while the server is away stops the worker at once, not after
    ``--reconnect-wait`` (a minute by default)."""
    storage = open_storage(pg_url, reconnect_wait=60)
    storage.reconnect.notify = lambda kind, line: None
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "away")
    # The server goes: every later connection is refused (nothing listens on port 1).
    storage.engine.dispose()
    storage.engine = create_engine("postgresql://postgres@127.0.0.1:1/x")
    storage.scoped_session = orm.scoped_session(orm.sessionmaker(bind=storage.engine))
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)  # Ctrl-C, once the wait has begun
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            storage.get_study_name_from_id(study_id)
        assert time.monotonic() - began < 10 and not storage.reconnect.lost
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.signal(signal.SIGINT, interrupt)
        storage.engine.dispose()


def test_the_lost_storage_is_found_behind_optunas_own_clean_up_error():
    try:
        try:
            raise StorageLost("--storage x: unreachable")
        except StorageLost:
            raise UnboundLocalError("updated_state")  # noqa: B904 (Optuna 5.0's finally block)
    except UnboundLocalError as exc:
        assert str(lost_in(exc)) == "--storage x: unreachable"
    assert lost_in(ValueError("x")) is None


@pytest.fixture
def private_pg():
    server = PrivatePostgres()
    yield server
    server.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def private_db(request):
    """A database server of the test's own, as a URL with a password where trust allows."""
    server = PrivatePostgres() if request.param == "postgresql" else PrivateMariaDB()
    yield server, server.url(SECRET) if request.param == "postgresql" else server.url()
    server.close()


def args_for(url: str, study: str, *extra: str) -> list[str]:
    return [*QUICK, *KILLABLE, "--storage", url, "--study", study, "--heartbeat", "1", *extra]


def wait_for_a_step(worker, url: str, study: str) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()
        if (number := running_trial(worker.pid, url, study)) is not None:
            return number
        time.sleep(0.05)
    raise AssertionError("no trial reached a step in time")


def test_a_database_restart_mid_trial_costs_a_wait_not_the_trial(private_db, tmp_path):
    """The server stopped mid-trial (PostgreSQL's fast shutdown ends every session with
    AdminShutdown; MariaDB's cuts them), started again once the worker says it waits: the
    trial goes on, nothing fails."""
    server, url = private_db
    worker = start(args_for(url, "blink", "--trials", "3"), tmp_path)
    number = wait_for_a_step(worker, url, "blink")
    server.stop()
    said = worker.stderr.readline()  # --quiet: the wait's first line, on stderr
    assert "unreachable" in said and "retrying for up to 60 s" in said, said
    server.start()
    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    assert "reachable again" in err and "Traceback" not in err and SECRET not in said + out + err
    study = load(url, "blink")
    states = [t.state.name for t in study.trials]
    assert "FAIL" not in states and len(states) == 3, states
    assert study.trials[number].state.name in ("COMPLETE", "PRUNED")


def test_a_storage_gone_past_the_wait_stops_the_worker_and_the_next_run_retries_its_trial(
    private_pg, tmp_path
):
    url = private_pg.url(SECRET)
    args = args_for(url, "gone", "--trials", "2", "--reconnect-wait", "3")
    worker = start(args, tmp_path)
    number = wait_for_a_step(worker, url, "gone")
    private_pg.stop()
    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: --storage postgresql://postgres:***@127.0.0.1:"), err
    assert "unreachable for 3 s (--reconnect-wait 3)" in last and "retried" in last
    assert "Traceback" not in err and SECRET not in out + err
    private_pg.start()
    assert load(url, "gone").trials[number].state.name == "RUNNING"  # as a crashed worker's
    again = start(args, tmp_path)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    trials = load(url, "gone").trials
    assert trials[number].state.name == "FAIL"
    retried = [t for t in trials[number + 1 :] if t.params == trials[number].params]
    assert retried and retried[0].state.name in ("COMPLETE", "PRUNED")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 2

"""What the tests share: the flags of a quick run, the points they enqueue, ways to run the CLI
(a fresh interpreter, in process, forked from a warm one), private database servers. No
fixtures here (see conftest.py), and no test module imports another: they import this."""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from sqlalchemy.pool import NullPool

from search.viewers import Launched, launching

# Two points of the space that tests enqueue: a cheap network that learns, and the slowest
# corner of the space (SGD at the smallest rate), which learns least in a short trial.
GOOD = {
    "lr": 1e-3,
    "batch_size": 64,
    "optimizer": "adam",
    "weight_decay": 1e-6,
    "schedule": "cosine",
    "arch": "cnn",
    "n_layers": 1,
    "batch_norm": False,
    "dropout": 0.0,
    "channels": 16,
    "head_dim": 128,
    "head_layers": 1,
}
BAD = {**GOOD, "optimizer": "sgd", "momentum": 0.8, "lr": 3e-4}  # the slowest corner of the space
# RunManager's columns, before the run's parameters.
RUN_MANAGER = ["run", "epoch", "loss", "accuracy", "epoch duration", "run duration"]

ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist runs N test processes at once: each gives torch its share of the cores, or
# their OpenMP threads outnumber the cores and spin against each other.
PROCESSES = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, (os.cpu_count() or 1) // PROCESSES)


# One epoch of 2,000 images in two steps, validated on 500, no warm-start trial (the article's
# CNN is the most expensive point of the space), no final fit, the champion scored on 1,000 of
# the 10,000 test images (all of them cost a CPU 3-15 s per run), waiting workers look again
# every 0.2 s, and torch gets this test process's share of the cores: the tests that need
# more ask for it.
QUICK = (
    "--epochs 1 --train-size 2000 --val-size 500 --step-images 1000 --final-epochs 0 "
    f"--no-warm-start --test-size 1000 --poll-seconds 0.2 --quiet --no-mlflow --threads {THREADS}"
).split()

# Eight steps a trial (two epochs of 2,000 images in steps of 500): the tests that kill or
# interrupt a run mid-trial have time to catch a trial between two steps.
KILLABLE = ["--epochs", "2", "--step-images", "500"]


def mlflow_server(home: Path) -> contextlib.AbstractContextManager[Launched]:
    """A real MLflow tracking server on loopback: SQLite backend, local artifact store."""
    store = f"sqlite:///{home / 'mlflow.db'}"
    args = ["server", "--backend-store-uri", store, "--artifacts-destination"]
    args += [str(home / "artifacts"), "--workers", "1"]
    return launching("mlflow", args, "/health")


AWKWARD = "../../escaped 'étude'"  # valid for Optuna and MLflow, unsafe as a file name


PG_SECRET = "pw-never-printed"  # trust auth ignores it; it is here to prove it is masked


def cli_command(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """``python -m search.run ARGS`` and an environment that finds this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "search.run", *args], env


def cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    command, env = cli_command(args)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cli`` without a new process: ``main(args)`` here, from ``cwd``, output captured.
    It saves a run the ~5 s of CPU a new interpreter spends on imports, torch's optimizer
    machinery and reading the dataset; what needs a process of its own is ``forked``, and
    what needs a fresh interpreter (as a user starts it) is ``cli`` or ``start``."""
    from search.run import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _as_in_a_terminal() -> None:
    """A shell without job control starts background jobs with SIGINT ignored, and a CI runner
    may start pytest so; Python then ignores Ctrl-C too. A terminal's Ctrl-C meets the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m search.run ARGS`` in the background, output captured, as from a terminal."""
    command, env = cli_command(args)
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_a_terminal,
    )


# What a fresh ``python -m search.run`` spends ~4 s of CPU importing (torch, the torch._dynamo
# that every optimizer imports, MLflow, pandas, matplotlib, the product): imported once into a
# fork server, so each ``forked`` run starts from a warm copy of it. (search.run imports the
# rest of the product; figures and tracking it imports only when needed.)
WARM = ["torch", "torch._dynamo", "optuna", "mlflow", "mlflow.pytorch", "pandas", "search.run"]
WARM += ["search.figures", "search.tracking.hooks", "tests.helpers"]


def _warm_context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WARM)
    return context


def _kill_at(where: str) -> None:
    """Replace ``module:Attr.path`` with a function that SIGKILLs this process as it is
    entered: a real SIGKILL at a chosen moment (nothing runs after it, as under the OOM
    killer)."""
    import importlib

    module, _, path = where.partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, killed)


def _run_main(
    args: list[str], cwd: str, env: dict[str, str], out: str, err: str, kill_at: str = ""
) -> None:
    """The forked process: as ``python -m search.run ARGS`` would be, from a terminal, with
    stdout and stderr in files. One difference: a forked process ends without the
    interpreter's exit handlers (multiprocessing ends it with ``os._exit``). The product
    registers none; of the libraries' (read off a tracked run: logging's flush, filelock's and
    weakref finalizers, matplotlib's figures, MLflow's fluent run, which the product does not
    use, and its telemetry), logging's is called here, and what the others undo (locks, files,
    sockets) the kernel undoes when the process ends. A run whose interpreter exit is the
    point is ``cli``'s."""
    for path, fd in ((out, 1), (err, 2)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [str(ROOT / "search" / "run.py"), *args]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if kill_at:
        _kill_at(kill_at)
    from search.run import main

    try:
        code = main(args)
    finally:
        logging.shutdown()
        sys.stdout.flush(), sys.stderr.flush()
    sys.exit(code)


class Forked:
    """``main(args)`` in a process of its own, forked from a warm interpreter: a real process
    (its own pid, storage connections and signals; killable mid-trial) without the start-up.
    Offers the ``subprocess.Popen`` methods the tests use. ``kill_at`` (``module:Attr``)
    SIGKILLs it as that function is entered."""

    def __init__(self, args: list[str], cwd: Path, kill_at: str = "") -> None:
        self.args = args
        self._dir = tempfile.TemporaryDirectory(prefix="forked-")
        self._out, self._err = (os.path.join(self._dir.name, n) for n in ("out", "err"))
        for path in (self._out, self._err):  # there even if it is killed before it opens them
            Path(path).touch()
        env = cli_command(args)[1]  # the environment ``cli`` gives its process
        options = (list(args), str(cwd), env, self._out, self._err, kill_at)
        self._process = _warm_context().Process(target=_run_main, args=options, daemon=True)
        self._process.start()  # returns once the process exists (the fork server is up)
        self.started = time.monotonic()  # its own start: what its --budget counts from
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode  # as Popen's: -N when ended by signal N

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        out, err = (Path(p).read_text(encoding="utf-8") for p in (self._out, self._err))
        self._dir.cleanup()
        return out, err


def forked(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``cli`` in a ``Forked`` process: a run that needs a process of its own, not a fresh
    interpreter (that is ``cli``: ``--help``, signals from a terminal, a user's first run).
    The result's ``seconds`` is how long the process lived (not the fork server's start)."""
    run = Forked(args, cwd)
    out, err = run.communicate(timeout)
    done = subprocess.CompletedProcess(args, run.returncode, out, err)
    done.seconds = time.monotonic() - run.started
    return done


def load(storage: str, name: str) -> optuna.Study:
    """The study as the CLI opens it (``journal:FILE`` included). A database connection is
    closed as soon as it is given back: tests poll, and pooled connections of discarded
    studies would pile up until PostgreSQL refuses clients (``too many clients``)."""
    from search.storage import open_storage
    from search.storage_url import StorageURL

    if StorageURL.parse(storage).journal:
        opened = open_storage(storage)
    else:
        opened = optuna.storages.RDBStorage(storage, engine_kwargs={"poolclass": NullPool})
    return optuna.load_study(study_name=name, storage=opened)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


def kill_mid_trial(
    victim: subprocess.Popen | Forked, storage: str, study: str, sig=signal.SIGKILL, timeout=300
) -> int:
    """Send ``sig`` to ``victim`` while one of its trials is running and has reported a step
    (polling the storage, the only place that knows); waits for it to exit and returns that
    trial. The victim is frozen (SIGSTOP) while the storage is read, so the trial seen running
    is the one the signal interrupts: a trial pruned meanwhile cannot be taken for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert victim.poll() is None, "the worker ended before it could be killed"
        if (number := running_trial(victim.pid, storage, study)) is not None:
            victim.send_signal(signal.SIGSTOP)
            if running_trial(victim.pid, storage, study) == number:
                victim.send_signal(sig)
                victim.send_signal(signal.SIGCONT)
                victim.wait()
                return number
            victim.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no trial of the victim reached a step in time")


def running_trial(
    pid: int | str, storage: str, study: str, at_most: int | None = None
) -> int | None:
    """The number of the running trial of ``pid`` (or of the worker ``host:pid``) once it has
    reported a step (and, with ``at_most``, no more steps than that), else ``None``."""
    try:
        trials = load(storage, study).get_trials()
    except KeyError:  # the study is not created yet
        return None
    for t in trials:
        worker = t.user_attrs.get("worker", "")
        mine = worker == pid if isinstance(pid, str) else worker.endswith(f":{pid}")
        steps = len(t.intermediate_values)
        if mine and t.state.name == "RUNNING" and 0 < steps <= (at_most or steps):
            return t.number
    return None


def as_host(host: str, args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m search.run ARGS`` as another machine would run it: in its own UTS and pid
    namespaces (``unshare``), so its host name is ``host`` and its pid is 1, sharing this
    machine's PostgreSQL on 127.0.0.1. It dies with the returned process (``--kill-child``);
    ``inner_pid`` is the worker itself, for SIGSTOP/SIGCONT."""
    command, env = cli_command(args)
    inner = f"hostname {shlex.quote(host)} && exec {shlex.join(command)}"
    namespaces = ["unshare", "--uts", "--pid", "--mount-proc", "--kill-child"]
    return subprocess.Popen(
        [*namespaces, "sh", "-c", inner],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def inner_pid(outer: subprocess.Popen, timeout: float = 30) -> int:
    """The pid (in this namespace) of the worker that ``as_host`` started."""
    deadline = time.monotonic() + timeout
    path = Path(f"/proc/{outer.pid}/task/{outer.pid}/children")
    while time.monotonic() < deadline:
        children = path.read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("the namespaced worker did not start")


def free_port() -> int:
    """A port free on 127.0.0.1 now (a server started a moment later takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL server of its own (``initdb`` in a temporary directory, a free port on
    127.0.0.1), for the tests that restart or stop the database under a worker: the suite's
    shared server must stay up for the tests running beside them. Run as the ``postgres``
    user (``initdb`` refuses root)."""

    BIN = Path("/usr/lib/postgresql") / "15" / "bin"

    def __init__(self) -> None:
        # Not under pytest's tmp_path: the postgres user cannot enter root's private directory.
        self.root = Path(tempfile.mkdtemp(prefix="fashion-search-pg-"))
        self.port = free_port()
        subprocess.run(["chown", "postgres", str(self.root)], check=True)
        self._as_postgres("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres")
        self.start()

    def url(self, password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.BIN / tool), *args]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        data, log = str(self.root / "data"), str(self.root / "log")
        self._as_postgres("pg_ctl", "-D", data, "-w", "-l", log, "-o", options, action, *args)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """Fast shutdown: every client's session ends with ``AdminShutdown``, as in a restart
        by an operator or a failover."""
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateMariaDB:
    """A MariaDB server of its own (``mariadb-install-db`` in a temporary directory, a free
    port on 127.0.0.1, root without a password), stopped and started under a worker like
    ``PrivatePostgres``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fashion-search-maria-"))
        self.port = free_port()
        subprocess.run(["chown", "mysql", str(self.root)], check=True)
        install = ["mariadb-install-db", f"--datadir={self.root / 'data'}", "--user=mysql"]
        root_login = "--auth-root-authentication-method=normal"  # root@127.0.0.1, no password
        subprocess.run([*install, root_login, "--skip-test-db"], check=True, capture_output=True)
        self.server: subprocess.Popen | None = None
        self.start()
        self._admin("-e", "CREATE DATABASE optuna")

    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/optuna"

    def _admin(self, *args: str) -> subprocess.CompletedProcess:
        command = ["mariadb", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root", *args]
        return subprocess.run(command, capture_output=True)

    def start(self) -> None:
        data, sock = f"--datadir={self.root / 'data'}", f"--socket={self.root / 'sock'}"
        self.server = subprocess.Popen(
            ["mariadbd", data, sock, f"--port={self.port}", "--user=mysql"]
            + ["--bind-address=127.0.0.1", "--skip-networking=0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while self._admin("-e", "SELECT 1").returncode != 0:
            assert self.server.poll() is None, "mariadbd exited"
            assert time.monotonic() < deadline, "mariadbd did not answer in 60 s"
            time.sleep(0.1)

    def stop(self) -> None:
        """A clean shutdown (what ``systemctl restart`` does): clients' connections are cut."""
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=60)
            self.server = None

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()
        shutil.rmtree(self.root, ignore_errors=True)

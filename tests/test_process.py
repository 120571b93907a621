"""search/process.py: a recorded process is gone only when that is certain: its pid dead or
now another process's (another start time), or the machine booted since; never another
machine's."""

from __future__ import annotations

import os
import socket
import subprocess

from search import process
from search.process import alive, gone, me, record, space, started

HERE = socket.gethostname()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_alive_tells_running_exited_and_zombie_processes():
    assert alive(os.getpid()) and not alive(dead_pid())
    zombie = subprocess.Popen(["true"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    assert not alive(zombie.pid)
    zombie.wait()


def test_a_dead_pid_of_this_machine_is_gone_another_machines_never():
    pid = dead_pid()
    assert gone(f"{HERE}:{pid}", space(), None)
    assert not gone(f"elsewhere:{pid}", space(), None)
    assert not gone("not a name", space(), None)


def test_a_live_process_is_gone_only_if_its_pid_now_belongs_to_another_start():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        start = started(sleeper.pid)
        assert start is not None
        assert not gone(f"{HERE}:{sleeper.pid}", space(), start)  # the process recorded
        assert gone(f"{HERE}:{sleeper.pid}", space(), start - 1)  # a reused pid
        assert not gone(f"{HERE}:{sleeper.pid}", space(), None)  # an old record: alive
    finally:
        sleeper.kill()
        sleeper.wait()


def test_this_process_is_gone_only_as_an_earlier_holder_of_its_pid():
    mine = record()
    assert mine["owner"] == me() and mine["space"] == space()
    assert not gone(me(), space(), mine["started"])
    assert gone(me(), space(), mine["started"] - 1)


def test_a_record_of_another_boot_is_gone_of_another_pid_namespace_unknown():
    boot, namespace = space().split(":")
    pid = os.getppid()  # alive: only the space can say it is gone
    assert gone(f"{HERE}:{pid}", f"another-boot:{namespace}", None)
    assert not gone(f"{HERE}:{pid}", f"{boot}:another-namespace", None)


def test_a_name_is_host_and_pid():
    assert process.parse("a:b:42") == ("a:b", 42) and process.parse("host") is None

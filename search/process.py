"""Who a process is, as the study records it, and whether a recorded process is gone.

A process is named ``host:pid`` (``me()``), the one spelling every record uses: the worker of
a trial (``search.recovery``), the holder of the end of a study (``search.ending``), the
champion's ``fitted_by`` tag. A pid means one process only within one boot and one pid
namespace (containers may share a host name), and only until it is reused, so beside the name
a record keeps ``space()`` (``BOOT_ID:PID_NAMESPACE``) and ``started()`` (the process's start,
in clock ticks since boot): ``gone(record)`` is then certain for a process of this machine,
and says nothing (``False``) of another machine's.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def me() -> str:
    """This process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def parse(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a ``host:pid`` name, or ``None`` if it is not one."""
    host, _, pid = str(name).rpartition(":")
    return (host, int(pid)) if host and pid.isdigit() else None


def space() -> str:
    """``BOOT_ID:PID_NAMESPACE`` of this process (empty parts off Linux)."""
    parts = []
    for read in (
        lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        lambda: str(os.stat("/proc/self/ns/pid").st_ino),
    ):
        try:
            parts.append(read())
        except OSError:
            parts.append("")
    return ":".join(parts)


def started(pid: int | None = None) -> int | None:
    """When process ``pid`` (default: this one) started, in clock ticks since boot (Linux's
    /proc/PID/stat field 22); ``None`` if it does not exist or cannot be read. Two processes
    that share a pid in one boot never share this."""
    try:
        stat = Path(f"/proc/{pid or os.getpid()}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def record() -> dict:
    """What a claim or a trial records of this process (see ``gone``)."""
    return {"owner": me(), "space": space(), "started": started()}


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # Linux: an exited child that nobody reaped yet is a zombie, state 'Z'
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(owner: str, recorded_space: str | None, start: int | None) -> bool:
    """Whether the process ``owner`` (``host:pid``), recorded with ``recorded_space`` and
    ``start``, is certainly gone: it ran on this machine and its pid is dead, or belongs now to
    another process (another start time), or the machine has booted since. Another machine's
    process, or one of another pid namespace here, cannot be told: ``False``. This process
    itself is not gone, unless the record is of an earlier process with its pid."""
    found = parse(owner)
    if found is None or found[0] != socket.gethostname():
        return False
    here = space()
    recorded_space = recorded_space if recorded_space is not None else here
    if recorded_space != here:
        boot, mine = recorded_space.partition(":")[0], here.partition(":")[0]
        return bool(boot and mine and boot != mine)
    pid = found[1]
    if pid == os.getpid():
        return start is None or start != started()
    if not alive(pid):
        return True
    return start is not None and started(pid) not in (None, start)

"""Child processes that stop with their parent, whole process groups at a time.

`make run` starts each part (gunicorn, the RQ worker, the scheduler) in a process group
of its own and stops the group, so every process a part forked (gunicorn's workers,
RQ's scheduler) goes with it, even one whose parent died first. On Linux each child is
also told to get SIGTERM when its parent dies, so nothing outlives a killed parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` to this process when its parent exits (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def forked_children_die_with_this_process() -> None:
    """Every process forked from now on gets SIGTERM when this one dies, however it dies
    (RQ's scheduler, forked by the worker, kept its lock after a SIGKILLed worker)."""
    os.register_at_fork(after_in_child=die_with_parent)


def group_members(pgid: int) -> list[int] | None:
    """Live (not zombie) processes of the group, from /proc; None where there is none."""
    proc = "/proc"
    if not os.path.isdir(proc):
        return None
    members = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry))
    return members


def group_alive(pgid: int) -> bool:
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_for_group(pgid: int, deadline: float, reap=None) -> bool:
    """Wait until no process of the group is left (True) or the deadline passes (False).

    `reap()` collects the group leader's exit, which the caller owns: a zombie
    leader would otherwise keep the group alive.
    """
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not group_alive(pgid):
            return True
        time.sleep(0.05)
    return not group_alive(pgid)

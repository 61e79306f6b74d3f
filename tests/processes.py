"""Subprocesses started by tests: each in a session of its own, killed with everything it
started at its timeout or when the test is interrupted (pytest-timeout, Ctrl-C), so that no child
or grandchild outlives the test and keeps the CPUs busy for the rest of the suite.

Killing the child's process group is not enough: launchers put their workers in sessions of
their own (``torchrun`` starts every rank with ``start_new_session=True``), so ``kill_tree``
also walks the child's descendants in ``/proc`` and kills their groups. ``tests/run_backends.py``
uses it on a whole pytest process at its deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

PROC = Path("/proc")


def _table() -> dict[int, tuple[int, int]]:
    """``pid -> (parent pid, process group)`` of the live (not zombie) processes."""
    table = {}
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:
            stat = (PROC / entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if fields[0] not in ("Z", "X"):
            table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _marked(marker: str) -> set[int]:
    """The processes whose environment holds the entry ``marker`` (``NAME=value``)."""
    needle = marker.encode() + b"\0"
    found = set()
    for entry in os.listdir(PROC):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if needle in (PROC / entry / "environ").read_bytes() + b"\0":
                    found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


def kill_tree(pid: int | None, *, marker: str | None = None) -> set[int]:
    """SIGKILL to ``pid``, its descendants, their process groups and the processes whose
    environment holds ``marker`` (an inherited ``NAME=value``: it finds the orphans whose parent
    died first); never this process or its group. Returns the pids killed.

    Every process found is stopped (SIGSTOP) before the next look, so that none forks unseen.
    Without ``/proc`` (not Linux): only the process group of ``pid``.
    """
    me, own_group = os.getpid(), os.getpgrp()
    if not PROC.is_dir():
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        return set()
    found: set[int] = set()
    groups: set[int] = set()
    for _ in range(20):
        table = _table()
        new = {p for p in (marker and _marked(marker)) or () if p in table}
        if pid is not None and pid in table:
            new.add(pid)
        new |= {p for p, (_, g) in table.items() if g in groups}
        grew = True
        while grew:  # descendants of everything found so far
            more = {p for p, (pp, _) in table.items() if pp in found | new} - found - new
            new |= more
            grew = bool(more)
        new -= found | {me}
        if not new:
            break
        for p in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGSTOP)
        found |= new
        groups |= {table[p][1] for p in new} - {own_group}
    for g in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(g, signal.SIGKILL)
    for p in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return found


def kill_group(proc: subprocess.Popen) -> None:
    """Kills ``proc`` (started with ``start_new_session=True``) with its descendants and their
    process groups, then reaps it."""
    if proc.poll() is None:
        kill_tree(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of its group, if it had exited
    proc.wait()


def run(args, *, timeout: float, capture_output: bool = False, check: bool = False,
        input=None, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` with ``timeout`` required and the child in a new session.

    At the timeout the child is killed with all it started (``kill_group``) and
    ``subprocess.TimeoutExpired`` raised with the output read so far; any other exception while
    waiting (pytest-timeout's ``Failed``, ``KeyboardInterrupt``) kills them too before it
    propagates. What is left of the child's process group after a normal exit (a background
    grandchild) is killed as well.
    """
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with subprocess.Popen(args, start_new_session=True, **kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            try:  # everything it started is dead: the pipes close
                stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                stdout = stderr = None
            raise subprocess.TimeoutExpired(
                proc.args, timeout, output=stdout, stderr=stderr) from None
        except BaseException:
            kill_group(proc)
            raise
        kill_group(proc)
    completed = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if check:
        completed.check_returncode()
    return completed

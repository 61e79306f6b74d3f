"""Runs the distributed workers and reads back their JSON reports.

Each engine needs an environment fixed before the framework starts (logical
TF devices, the XLA device count) or several processes (DDP). ``conftest.py``
gives this process two devices when it still can; the worker then runs here,
else in a fresh subprocess. Multi-process engines run each process as a fresh
subprocess (``run_processes``): 2 TF workers with ``TF_CONFIG``, 2 JAX
processes with the ``KERAS_DISTRIBUTION_*`` variables, 2 DDP ranks under the
real ``torchrun`` (``run_ddp``). Tests only assert on the numbers the workers
report.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import processes

ROOT = Path(__file__).resolve().parents[2]
# Default limit of a worker run: below pytest-timeout's 600 s per test (pyproject.toml), so that
# a hung worker fails with its own output rather than the test's stack.
TIMEOUT = 480
WORKERS = Path(__file__).resolve().parent / "workers"


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        pytest.fail(
            f"{what} exited with {proc.returncode}.\n--- stdout ---\n{proc.stdout[-3000:]}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}",
            pytrace=False,
        )


def _worker(name: str):
    return importlib.import_module(f"tests.distribute.workers.{name}")


def run_worker(name: str, out_dir: Path, *, env: dict | None = None,
               timeout: float = TIMEOUT, in_process: bool = False) -> dict:
    """Runs ``workers/<name>.py`` here or in a new Python process; returns its report."""
    out = Path(out_dir) / f"{name}.json"
    if in_process:
        _worker(name).main(str(out))
        return json.loads(out.read_text())
    proc = processes.run(
        [sys.executable, str(WORKERS / f"{name}.py"), str(out)],
        cwd=ROOT, env=_env(env), capture_output=True, text=True, timeout=timeout,
    )
    _check(proc, f"worker {name}")
    return json.loads(out.read_text())


def run_processes(name: str, out_dir: Path, envs: list[dict], *, timeout: float = TIMEOUT,
                  command: list[str] | None = None) -> list[dict]:
    """Starts ``workers/<name>.py`` once per environment in ``envs``; returns their reports.

    The worker writes its report to ``<out_dir>/<name>.json.rank<R>`` (``R``: its
    process index in the engine); the reports come back sorted by ``R``.
    ``command`` replaces the Python interpreter (a launcher such as ``torchrun``:
    ``envs`` then has one entry and the launcher starts the ranks). Each process
    gets its own session; when one fails, or at the timeout, every process is
    killed with all it started (``processes.kill_group``), so no worker outlives
    the test (nor waits for a dead peer).
    """
    out = Path(out_dir) / f"{name}.json"
    logs = [Path(out_dir) / f"{name}.process{i}.log" for i in range(len(envs))]
    procs = []
    try:
        for env, log in zip(envs, logs, strict=True):
            with open(log, "w") as f:
                procs.append(subprocess.Popen(
                    [*(command or [sys.executable]), str(WORKERS / f"{name}.py"), str(out)],
                    cwd=ROOT, env=_env(env), stdout=f, stderr=subprocess.STDOUT,
                    start_new_session=True,
                ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            # With its descendants: torchrun starts each rank in a session of its own.
            processes.kill_group(proc)
    for proc, log in zip(procs, logs, strict=True):
        if proc.returncode != 0:
            pytest.fail(
                f"{name}: process {procs.index(proc)} exited with {proc.returncode} (killed "
                f"if negative: a timeout of {timeout} s or another process failed). "
                f"Output:\n{log.read_text()[-6000:]}",
                pytrace=False,
            )
    return [json.loads(p.read_text()) for p in sorted(Path(out_dir).glob(f"{name}.json.rank*"))]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ddp(name: str, out_dir: Path, *, timeout: float = TIMEOUT) -> list[dict]:
    """Two DDP ranks (gloo over loopback) started by the real ``torchrun``.

    ``python -m torch.distributed.run --nnodes=1 --nproc_per_node=2
    --master_addr=127.0.0.1 --master_port=<free port> workers/<name>.py <out>``:
    the launcher sets each rank's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ...;
    every process is killed at the timeout or when one fails.
    """
    env = {"OMP_NUM_THREADS": "1", "KERAS_BACKEND": "torch"}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={free_loopback_port()}"]
    return run_processes(name, out_dir, [env], timeout=timeout, command=torchrun)

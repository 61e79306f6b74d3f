"""Starts the distributed workers in fresh processes and reads back their JSON reports.

Each engine needs an environment that cannot be set inside the test process
(logical TF devices and XLA device counts must be fixed before the framework
starts; DDP needs several processes), so every distributed test runs its
worker in a subprocess and only asserts on the numbers it reports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


def run_worker(name: str, out_dir: Path, *, env: dict | None = None,
               timeout: float = 600) -> dict:
    """Runs ``workers/<name>.py`` in a new Python process; returns its report."""
    out = Path(out_dir) / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, str(WORKERS / f"{name}.py"), str(out)],
        cwd=ROOT, env=_env(env), capture_output=True, text=True, timeout=timeout,
    )
    _check(proc, f"worker {name}")
    return json.loads(out.read_text())


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_torchrun(name: str, out_dir: Path, *, nproc: int = 2,
                 timeout: float = 600) -> list[dict]:
    """Runs ``workers/<name>.py`` under torchrun, ``nproc`` ranks over loopback (gloo)."""
    out = Path(out_dir) / f"{name}.json"
    extra = {"OMP_NUM_THREADS": "1"}
    if Path("/sys/class/net/lo").exists():
        extra["GLOO_SOCKET_IFNAME"] = "lo"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
         f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
         f"--master_port={free_loopback_port()}", str(WORKERS / f"{name}.py"), str(out)],
        cwd=ROOT, env=_env(extra), capture_output=True, text=True, timeout=timeout,
    )
    _check(proc, f"torchrun worker {name}")
    return [json.loads(Path(f"{out}.rank{r}").read_text()) for r in range(nproc)]

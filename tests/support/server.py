"""Start a real uvicorn process serving namegen on a free loopback port, for tests and benchmarks;
read a process's resident memory.

with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
    httpx.get(f"{srv.url}/readyz")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.config import REPO


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a uvicorn started with --workers N, or [pid] when it serves alone
    (not multiprocessing's resource tracker, which uvicorn's supervisor also starts)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    cmdlines = {c: Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace") for c in children}
    workers = [int(c) for c, cmd in cmdlines.items() if "python" in cmd and "resource_tracker" not in cmd]
    return workers or [pid]


def rss_kb(pid: int) -> int:
    """Resident memory of a process, in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def protocol_args(repo: Path) -> list[str]:
    """uvicorn's flag for the header-deadline protocol the image serves with, wherever the checkout
    keeps it (an older checkout, served for an A/B, may keep it elsewhere or not have it)."""
    for module in ("app/http/server.py", "app/server.py"):
        if (repo / module).is_file():
            return ["--http", module.removesuffix(".py").replace("/", ".") + ":HeaderTimeoutProtocol"]
    return []


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ServerError(RuntimeError):
    pass


@contextmanager
def serve(
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    ready_timeout: float = 60,
    repo: Path = REPO,
    prefix: list[str] | None = None,
    poll_s: float = 0.05,
) -> Iterator[Server]:
    """Run `uvicorn app.main:app` until the block ends; wait for /readyz (asked every `poll_s`)
    before yielding. `repo`: the checkout whose app/ and models/ to serve (this one by default);
    `prefix`: a command to run it under (for example `taskset -c 0`)."""
    port = free_port()
    command = [*(prefix or []), sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
               "--port", str(port), *protocol_args(repo), *(args or [])]  # fmt: skip
    with launch(command, port, env, ready_timeout, repo, poll_s) as server:
        yield server


@contextmanager
def launch(
    command: list[str],
    port: int,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60,
    repo: Path = REPO,
    poll_s: float = 0.05,
) -> Iterator[Server]:
    """Run `command`, which serves namegen on `port` (uvicorn, `namegen serve`, either under
    prlimit...), until the block ends, then SIGTERM it; wait for /readyz before yielding."""
    python_path = os.pathsep.join(p for p in [str(repo), os.environ.get("PYTHONPATH", "")] if p)
    full_env = {"NAMEGEN_MODELS_DIR": str(repo / "models"), **os.environ, **(env or {})}
    full_env["PYTHONPATH"] = python_path  # `app` is the checkout's own, whatever is installed
    with tempfile.TemporaryDirectory(prefix="namegen-uvicorn-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, cwd=repo, env=full_env, stdout=log, stderr=subprocess.STDOUT)
            server = Server(f"http://127.0.0.1:{port}", proc, log_path)
            try:
                _wait_ready(server, ready_timeout, poll_s)
                yield server
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _wait_ready(server: Server, timeout: float, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise ServerError(f"uvicorn exited with {server.proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"uvicorn was not ready in {timeout} s:\n{server.log()}")
        time.sleep(poll_s)

"""Ray Serve on one machine as docs/deployment.md tells a reader to run it, command for command:
`umask 077`, `serve run deploy/ray/serve.local.yaml`, then `RAY_AUTH_MODE=token serve shutdown -y`
and Ctrl-C. Checks what the page says of it: the proxy on 127.0.0.1 only, Ray's token readable by
its owner alone, the shutdown refused without RAY_AUTH_MODE=token and done with it, and the
`server: uvicorn` header that Serve's proxy adds. Needs the ray extra; skipped without it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import REPO

pytestmark = pytest.mark.e2e
pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

SERVE = Path(sys.executable).with_name("serve")
LOCAL = REPO / "deploy" / "ray" / "serve.local.yaml"


def test_the_local_config_is_the_clusters_application_on_loopback() -> None:
    local = yaml.safe_load(LOCAL.read_text())
    cluster = yaml.safe_load((REPO / "deploy" / "ray" / "serve.yaml").read_text())
    assert local["applications"] == cluster["applications"]
    assert local["http_options"] == {**cluster["http_options"], "host": "127.0.0.1"}


def listening_on(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(address)
    return found


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_run_as_the_docs_say(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "NAMEGEN_TORCH_THREADS": "1"}
    env.pop("RAY_AUTH_MODE", None)
    # Ctrl-C as a terminal delivers it: a suite started in the background (`cmd &` in a script)
    # inherits SIGINT ignored, and Python then leaves it ignored, so the child restores the default
    run = subprocess.Popen(
        ["bash", "-c", f"umask 077 && exec {SERVE} run {LOCAL}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                ready = httpx.get("http://127.0.0.1:8000/readyz", timeout=5)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert run.poll() is None and time.monotonic() < deadline, "serve run never got ready"
            time.sleep(1)
        assert listening_on(8000) == {"0100007F"}  # 127.0.0.1, nothing else
        token = tmp_path / ".ray" / "auth_token"
        assert token.stat().st_mode & 0o077 == 0  # readable by its owner alone
        assert ready.headers["server"] == "uvicorn"  # Serve's proxy's, as the docs say
        refused = subprocess.run(
            [SERVE, "shutdown", "-y"], env=env, capture_output=True, text=True, timeout=120
        )
        assert "Missing authentication token" in refused.stdout + refused.stderr
        done = subprocess.run(
            [SERVE, "shutdown", "-y"], env={**env, "RAY_AUTH_MODE": "token"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "Sent shutdown request" in done.stdout + done.stderr
        deadline = time.monotonic() + 60
        while answers("http://127.0.0.1:8000/healthz"):
            assert time.monotonic() < deadline, "the application was not removed"
            time.sleep(1)
    finally:
        run.send_signal(signal.SIGINT)  # Ctrl-C: serve run stops Serve and its local cluster
        try:
            run.wait(timeout=90)  # it stops Serve and its local cluster in seconds
        except subprocess.TimeoutExpired:
            run.kill()
            raise
    assert run.returncode == 0

"""`namegen serve` and `namegen verify` as a newcomer runs them: what they print on a clean start,
and what happens when the port is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.server import free_port

NAMEGEN = Path(sys.executable).with_name("namegen")


def test_nothing_alarming_is_printed_without_numpy() -> None:
    """The service never uses NumPy and need not have it; torch's warning about it is not shown.
    (sys.modules["numpy"] = None makes any import of numpy fail, as in an environment without it.)"""
    code = "import sys; sys.modules['numpy'] = None; import app.main, app.inference.verify, app.cli"
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "NumPy" not in done.stderr and "Warning" not in done.stderr


def test_a_taken_port_is_named_before_the_models_load() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [str(NAMEGEN), "serve", "--port", str(port)], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "already in use" in done.stderr
    assert "--port" in done.stderr and "NAMEGEN_PORT" in done.stderr
    assert "startup complete" not in done.stderr and "Traceback" not in done.stderr

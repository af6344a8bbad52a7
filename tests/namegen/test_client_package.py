"""The client as users install it: clients/python built as a wheel of its own and installed into a
fresh virtualenv, which then has neither torch nor any of the service's packages, and still talks to
a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.server import serve

pytestmark = pytest.mark.e2e

USE = """
import sys
from namegen import Client
with Client(sys.argv[1]) as api:
    print(api.generate(3, seed=7).names)
    print(api.model("surnames").name)
for package in ("app", "training", "checkpoint_format", "torch"):
    try:
        __import__(package)
    except ImportError:
        continue
    raise SystemExit(f"{package} is importable beside the client")
assert "torch" not in sys.modules
"""


def run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_client_installs_and_works_without_the_service(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, REPO / "clients" / "python")
    (wheel,) = tmp_path.glob("namegen_client-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel)
    with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
        # -I: the checkout's folders (app/, training/) are not on the path, as in a user's project
        out = run(venv / "bin" / "python", "-I", "-c", USE, srv.url)
    names, model = out.splitlines()
    assert names.startswith("[") and names.count("'") == 6 and model == "surnames"

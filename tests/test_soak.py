"""The short soak: 10 s of mixed traffic at 64 connections against a real server, no errors
allowed (bench/soak.py; the 60 s version's figures are in the README)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.server import REPO

pytestmark = pytest.mark.e2e


def test_ten_seconds_of_mixed_traffic_without_an_error() -> None:
    # memory is judged loosely here (25%): the short run is mostly allocator warm-up
    cmd = [sys.executable, "-m", "bench.soak", "--duration", "10", "--max-growth", "0.25"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 errors" in run.stdout

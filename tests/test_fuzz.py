"""Schema-driven fuzzing: schemathesis generates requests for every operation in the running
service's /openapi.json and checks that none gets a 5xx or a response outside its declared schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import serve

pytestmark = pytest.mark.e2e


# Every warning but validation_mismatch: which names, prefixes and conditions a request may carry
# depends on the loaded model's alphabet and conditions, which a static schema cannot state, so
# most generated strings are (rightly) refused with a 422 naming the field.
WARNINGS = ",".join([
    "missing_auth", "missing_test_data", "base_url_mismatch", "missing_deserializer",
    "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "unresolvable_reference",
    "rate_limited", "timeout_units",
])  # fmt: skip


def test_no_server_errors_and_responses_match_the_schema(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists() and shutil.which("schemathesis") is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    with serve(env={"NAMEGEN_LOG_LEVEL": "warning"}, args=["--no-access-log"]) as srv:
        run = subprocess.run(
            [str(cli) if cli.exists() else "schemathesis", "run", f"{srv.url}/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance",
             "--max-examples", "50", "--seed", "1", "--request-timeout", "30",
             "--warnings", WARNINGS],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout

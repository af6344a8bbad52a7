"""namegen-verify: a models folder checked as the service loads it, one line per file, and an exit
status that a build step or a cron job can act on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.inference.verify import main
from checkpoint_format import MANIFEST
from tests.app.conftest import REPO_MODELS


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for p in [*REPO_MODELS.glob("*.pt"), REPO_MODELS / MANIFEST]:
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


def test_intact_folder_exits_0(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("\nok     ") == len(list(folder.glob("*.pt"))) and "(CRC-32, digests, SHA256SUMS)" in out
    assert out.strip().endswith("all intact")


def test_damaged_or_missing_files_exit_1(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray((folder / "surnames.pt").read_bytes())
    data[len(data) // 2] ^= 1
    (folder / "surnames.pt").write_bytes(bytes(data))
    (folder / "names-male.pt").unlink()
    assert main([str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED {folder / 'surnames.pt'}: " in out and "is damaged" in out
    assert f"FAILED {folder / 'names-male.pt'}: listed in SHA256SUMS but missing" in out
    intact = len(list(folder.glob("*.pt"))) - 1  # all but surnames.pt
    assert out.count("\nok     ") == intact and "2 damaged or missing" in out


def test_folder_without_manifest_fails_unless_unverified_is_allowed(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path_factory.mktemp("elsewhere") / "expected.sha256"
    (folder / MANIFEST).replace(kept)
    assert main([str(folder)]) == 1
    assert "no SHA256SUMS to check the checkpoints against" in capsys.readouterr().out
    assert main([str(folder), "--allow-unverified"]) == 0
    out = capsys.readouterr().out
    assert "UNVERIFIED: no SHA256SUMS" in out and "(CRC-32, digests)" in out
    # the digests kept apart from the models, as NAMEGEN_MANIFEST does for the service
    assert main([str(folder), "--manifest", str(kept)]) == 0
    assert "(CRC-32, digests, SHA256SUMS)" in capsys.readouterr().out


def test_no_such_folder_exits_2(tmp_path: Path) -> None:
    assert main([str(tmp_path / "absent")]) == 2


def test_runs_without_the_training_package(folder: Path) -> None:
    code = (
        "import sys; sys.modules['training'] = None\n"  # any import of training/ now fails
        f"from app.inference.verify import main; sys.exit(main([{str(folder)!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr

"""`python -m training evaluate`: peak decades and the ceiling computed as documented, and the
command's report (tables, heat map, JSON) for a conditioned model against its baseline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import era_sample
from tests.support import RESOURCES
from training.__main__ import main
from training.corpus import DECADES
from training.evaluate import ceiling, peak_decades


def write_era(path: Path, rows: list[tuple[str, str, int, int]]) -> Path:
    path.write_bytes(gzip.compress("".join(f"{n}\t{s}\t{d}\t{b}\n" for n, s, d, b in rows).encode()))
    return path


def test_peak_decade_is_by_share_of_the_decade_not_by_births(tmp_path: Path) -> None:
    # "ada": 100 of 200 girls' births in the 1880s (50%) against 300 of 3,000 in the 1980s (10%):
    # more births in the 1980s, but its largest share, its peak, in the 1880s
    rows = [
        ("ada", "F", 1880, 100), ("bea", "F", 1880, 100),
        ("ada", "F", 1980, 300), ("cyd", "F", 1980, 2700),
        ("ada", "M", 1990, 5), ("dov", "M", 1990, 5),
    ]  # fmt: skip
    rows += [(f"x{chr(97 + i)}", "M", 2010, 1) for i in range(10)]  # read_era needs 10 distinct names
    peaks, births = peak_decades(write_era(tmp_path / "era.tsv.gz", rows))
    assert peaks["F"] == {"ada": 1880, "bea": 1880, "cyd": 1980}
    assert peaks["M"]["ada"] == 1990  # each sex's own shares
    top = ceiling(peaks, births)
    assert top["F"][1880] == 1.0  # every 1880s girl's name peaks in the 1880s
    assert top["F"][1980] == pytest.approx(2700 / 3000)  # ada's 300 births there peak a century before
    assert births["F"][1980] == {"ada": 300, "cyd": 2700}


def test_the_command_reports_loss_and_period_fit_against_the_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = era_sample(tmp_path, 40)
    tiny = ["--corpus", str(corpus), "--out", str(tmp_path), "--n-embd", "8", "--hidden", "16,16,16,16",
            "--steps", "30", "--eval-interval", "30", "--batch-size", "32", "--threads", "1",
            "--no-progress", "--weighting", "births"]  # fmt: skip
    assert main(["train", *tiny, "--name", "era"]) == 0
    assert main(["train", *tiny, "--name", "era-uncond", "--conditions", "none"]) == 0
    capsys.readouterr()
    model, base = tmp_path / "era.pt", tmp_path / "era-uncond.pt"
    args = ["evaluate", str(model), "--baseline", str(base), "--corpus", str(corpus), "--samples", "20"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| all | all |" in out and "| all, by births | all |" in out and "| mean |" in out
    assert out.count("| F | 1920s |") == 2  # one row in the loss table, one in the period-fit table
    assert model.with_suffix(".period.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads(model.with_suffix(".period.json").read_text())
    assert set(report["models"]) == {"era", "era-uncond"}
    for fit in report["models"].values():
        for sex in ("F", "M"):
            assert set(fit["share"][sex]) == {str(d) for d in DECADES}
            assert all(0.0 <= s <= 1.0 for s in fit["share"][sex].values())
            for d in DECADES:  # the heat map's row: peak decades of the real names sampled
                assert sum(fit["peaks"][sex][str(d)].values()) == fit["real"][sex][str(d)] <= 20
    assert 0 < report["ceiling"]["F"]["1920"] < 1


def test_a_model_without_conditions_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(RESOURCES.parent / "models" / "names.pt")])
    assert info.value.code == 2 and "declares no conditions" in capsys.readouterr().err

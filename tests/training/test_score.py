"""`python -m training score`: a checkpoint's test loss on any corpus's test split, as on its card,
and after a condition for a conditioned checkpoint."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import REPO as ROOT
from training.__main__ import main


def score(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["score", *args])
    return code, capsys.readouterr().out


def loss_of(out: str) -> float:
    match = re.search(r": (\d+\.\d{4}) nats/char$", out.strip())
    assert match, out
    return float(match.group(1))


def test_a_checkpoint_on_its_own_corpus_scores_the_test_loss_on_its_card(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = score(
        capsys, str(ROOT / "models/names-male.pt"), "--corpus", str(ROOT / "resources/names-male.txt")
    )
    assert code == 0
    card = json.loads((ROOT / "models/names-male.metrics.json").read_text())["metrics"]
    assert "(1416 names)" in out  # the card's test split: 10% of 14,160
    assert loss_of(out) == pytest.approx(card["test_loss"], abs=1e-4)


def test_the_condition_asked_for_changes_the_score(capsys: pytest.CaptureFixture[str]) -> None:
    era, girls = str(ROOT / "models/names-era.pt"), str(ROOT / "resources/names-female.txt")
    _, recent = score(capsys, era, "--corpus", girls, "--sex", "F", "--year", "2015")
    _, old = score(capsys, era, "--corpus", girls, "--sex", "M", "--year", "1885")
    assert "sex F, decade 2010" in recent and "sex M, decade 1880" in old
    assert loss_of(recent) < loss_of(old) - 0.3  # 2017's girls' names are far likelier as 2010s girls'


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("names.pt", ["--sex", "F"], "declares no conditions"),
        ("names-era.pt", ["--year", "1870"], "no condition token for {'decade': 1870}"),
    ],
)
def test_a_condition_the_model_lacks_is_an_error_naming_it(
    capsys: pytest.CaptureFixture[str], model: str, extra: list[str], message: str
) -> None:
    code, out = score(
        capsys, str(ROOT / "models" / model), "--corpus", str(ROOT / "resources/names.txt"), *extra
    )
    assert code == 2 and out.startswith("error:") and message in out

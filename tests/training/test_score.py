"""`python -m training score`: a checkpoint's test loss on any corpus's test split, as on its card,
and after a condition for a conditioned checkpoint."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import REPO as ROOT
from training.__main__ import main
from training.score import score_names


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
    assert "(1424 names)" in out  # the card's test split: 10% of 14,243
    assert loss_of(out) == pytest.approx(card["test_loss"], abs=1e-4)


def test_markov_chains_on_the_same_split_are_the_baselines(capsys: pytest.CaptureFixture[str]) -> None:
    """The chains learn the training names of the split the model's card uses and score its test
    names: a longer context fits better up to a point, and the shipped model beats both."""
    model, corpus = str(ROOT / "models/names-male.pt"), str(ROOT / "resources/names-male.txt")
    code, out = score(capsys, model, "--corpus", corpus, "--markov", "1,3")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split(" on ")[0] for line in lines] == [model, "Markov-1", "Markov-3"]
    assert all("test (1424 names)" in line for line in lines)
    ours, one, three = (loss_of(line) for line in lines)
    assert ours < three < one
    code, alone = score(capsys, "--corpus", corpus, "--markov", "3")  # no checkpoint needed
    assert code == 0 and alone.strip() == lines[2]


def test_markov_orders_must_be_whole_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        score(capsys, "--corpus", str(ROOT / "resources/names.txt"), "--markov", "four")
    assert "--markov: expected comma-separated orders, got 'four'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        score(capsys, "--corpus", str(ROOT / "resources/names.txt"))
    assert "give a checkpoint, --markov ORDERS, or both" in capsys.readouterr().err


def test_the_condition_asked_for_changes_the_score(capsys: pytest.CaptureFixture[str]) -> None:
    era, girls = str(ROOT / "models/names-era.pt"), str(ROOT / "resources/names-female.txt")
    _, recent = score(capsys, era, "--corpus", girls, "--sex", "F", "--year", "2015")
    _, old = score(capsys, era, "--corpus", girls, "--sex", "M", "--year", "1885")
    assert "sex F, decade 2010" in recent and "sex M, decade 1880" in old
    assert loss_of(recent) < loss_of(old) - 0.3  # 2024's girls' names are far likelier as 2010s girls'


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


def test_names_counted_by_weight_score_as_if_repeated() -> None:
    model, names = ROOT / "models/names-male.pt", ["liam", "noah", "oliver"]
    alike = score_names(model, names, {})
    assert score_names(model, names, {}, [2.0, 2.0, 2.0]) == pytest.approx(alike)
    assert score_names(model, names, {}, [3.0, 1.0, 0.0]) == pytest.approx(
        score_names(model, ["liam"] * 3 + ["noah"], {})
    )

"""Corpus building (deterministic, from the packages) and corpus reading (bad files refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import RESOURCES
from training.corpus import (
    DECADES,
    CorpusError,
    EraItem,
    build_corpora,
    fetch_pinned,
    neutral_names,
    read_bytes,
    read_era,
    read_items,
    sha256_bytes,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    build_corpora(a)
    build_corpora(b)
    return a, b


def test_build_is_deterministic_and_matches_committed(built: tuple[Path, Path]) -> None:
    a, b = built
    prov_a = json.loads((a / "corpora.json").read_text())
    prov_b = json.loads((b / "corpora.json").read_text())
    assert prov_a == prov_b
    committed = json.loads((RESOURCES / "corpora.json").read_text())
    assert prov_a == committed
    for entry in prov_a.values():
        assert (a / entry["file"]).read_bytes() == (b / entry["file"]).read_bytes()
        assert (a / entry["file"]).read_bytes() == (RESOURCES / entry["file"]).read_bytes()
        assert sha256_bytes(read_bytes(RESOURCES / entry["file"])) == entry["sha256"]


def test_corpus_sizes_and_content(built: tuple[Path, Path]) -> None:
    a, _ = built
    prov = json.loads((a / "corpora.json").read_text())
    assert {k: v["items"] for k, v in prov.items()} == {
        "names": 29225,
        "names-female": 17661,
        "names-male": 14243,
        "surnames": 88799,
        "names-all": 104819,
        "names-all-female": 71646,
        "names-all-male": 44904,
        "names-recent": 52958,
        "names-recent-female": 32724,
        "names-recent-male": 25553,
        "names-era": 410809,
        "names-world": 789675,
    }

    def lines(stem: str) -> list[str]:
        return (a / f"{stem}.txt").read_text().splitlines()

    assert lines("names")[:3] == ["liam", "noah", "oliver"]  # ordered by births in 2024
    assert lines("names-female")[:3] == ["olivia", "emma", "amelia"]
    assert lines("surnames")[:2] == ["smith", "johnson"]
    assert lines("names-all")[:2] == ["james", "john"]  # by births over 1880-2024
    era, _ = read_era(a / "names-era.tsv.gz")  # the same SSA data, by decade
    assert {it.decade for it in era} == set(DECADES) and DECADES[-1] == 2020
    first = era[0]  # ordered by decade, sex, births
    assert (first.name, first.sex, first.decade) == ("mary", "F", 1880)
    in_2020s = [it for it in era if it.decade == 2020 and it.sex == "F"]
    assert [it.name for it in in_2020s[:3]] == ["olivia", "emma", "charlotte"]
    # each corpus is the names of its years and sex: within the era corpus's decades of those years,
    # every year's exactly, and a year's or a sex's within the wider ones
    for suffix, sexes in (("", "FM"), ("-female", "F"), ("-male", "M")):
        of_sex = [it for it in era if it.sex in sexes]
        assert set(lines(f"names-all{suffix}")) == {it.name for it in of_sex}
        assert set(lines(f"names-recent{suffix}")) <= {it.name for it in of_sex if it.decade >= 2010}
        assert set(lines(f"names{suffix}")) <= {it.name for it in of_sex if it.decade == 2020}
        assert set(lines(f"names{suffix}")) <= set(lines(f"names-recent{suffix}"))
    assert set(lines("names-female")) | set(lines("names-male")) == set(lines("names"))
    for entry in prov.values():
        assert entry["source"] and entry["licence"] and entry["built_by"]


def test_the_gender_neutral_rule_on_the_ssa_data() -> None:
    """FiveThirtyEight's rule over 1990-2024: the names given to both sexes about alike, not those
    that lean one way (Jordan, and Avery and Rowan since 1990) or are rare (under 100 births)."""
    era, _ = read_era(RESOURCES / "names-era.tsv.gz")
    neutral = neutral_names(era)
    assert len(neutral) == 910 and neutral[:5] == ["riley", "peyton", "casey", "quinn", "charlie"]
    assert {"river", "emerson", "phoenix", "sage"} <= set(neutral)
    assert not {"jordan", "avery", "rowan", "emma", "liam", "taylor"} & set(neutral)
    tiny = [EraItem("ali", "F", 1990, 40), EraItem("ali", "M", 2000, 50), EraItem("bo", "F", 1990, 900),
            EraItem("bo", "M", 2010, 100), EraItem("cy", "F", 1980, 500), EraItem("cy", "M", 2020, 500),
            EraItem("di", "F", 2000, 70), EraItem("di", "M", 2000, 35)]  # fmt: skip
    assert neutral_names(tiny) == ["di"]  # ali: 90 births; bo: a tenth boys; cy: since 1990 all boys


def test_read_items_lowercases_and_dedupes(tmp_path: Path) -> None:
    p = tmp_path / "c.txt"
    p.write_text("Anna\n\nanna\n" + "\n".join(f"name{chr(97 + i)}" for i in range(10)) + "\n")
    items, sha = read_items(p)
    assert items[0] == "anna" and len(items) == 11 and len(sha) == 64


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"", "empty"),
        (b"\n \n", "empty"),
        (b"ann\nbob\ncid\n", "3 distinct items; at least 10"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        ("\n".join(f"a.{i}" for i in range(12)).encode(), "cannot be modelled"),
    ],
)
def test_bad_corpus_is_refused_with_the_file_named(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    p = tmp_path / "bad.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as info:
        read_items(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize(
    "line, message",
    [
        (b"anna\tX\t1920\t5\n", "line 1: expected name<TAB>sex"),
        (b"anna\tF\t1925\t5\n", "line 1"),
        (b"anna\tF\t1920\t0\n", "line 1"),
        (b"anna\tF\t1920\n", "line 1"),
        (b"an.na\tF\t1920\t3\n", "line 1"),
        (b"anna\tF\t1920\t3\nanna\tF\t1920\t4\n", "line 2"),
    ],
)
def test_bad_era_corpus_names_the_line(tmp_path: Path, line: bytes, message: str) -> None:
    import gzip

    p = tmp_path / "bad.tsv.gz"
    p.write_bytes(gzip.compress(line))
    with pytest.raises(CorpusError, match=message) as info:
        read_era(p)
    assert str(p) in str(info.value)


def test_the_resources_readme_lists_every_corpus_and_its_sha256() -> None:
    readme = (RESOURCES / "README.md").read_text()
    for entry in json.loads((RESOURCES / "corpora.json").read_text()).values():
        assert f"{entry['sha256']}  {entry['file']}" in readme
        assert f"`{entry['file']}`" in readme


def test_a_source_that_does_not_match_its_pinned_sha256_is_refused_and_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAMEGEN_CACHE", str(tmp_path))
    good = b"the data"
    pinned = sha256_bytes(good)
    with pytest.raises(CorpusError, match=f"has sha256 {sha256_bytes(b'tampered')}, expected {pinned}"):
        fetch_pinned("src.tgz", pinned, lambda: b"tampered", "the source")
    assert not (tmp_path / "src.tgz").exists()

    def unreachable() -> bytes:
        raise OSError("no route to host")

    with pytest.raises(CorpusError, match="cannot fetch the source: no route to host"):
        fetch_pinned("src.tgz", pinned, unreachable, "the source")
    assert fetch_pinned("src.tgz", pinned, lambda: good, "the source") == good
    assert (tmp_path / "src.tgz").read_bytes() == good
    assert fetch_pinned("src.tgz", pinned, unreachable, "the source") == good  # from the cache

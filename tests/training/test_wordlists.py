"""python -m training wordlists: the LDNOOBW list read out of the npm package's tarball, and the
committed file being what that command writes (header, order, entries)."""

from __future__ import annotations

import io
import json
import tarfile
import unicodedata

import pytest

from training import wordlists
from training.wordlists import render, word_list


def tarball(files: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_language_list_is_read_lowercased_sorted_and_unique() -> None:
    decomposed = unicodedata.normalize("NFD", "Bourré")
    data = tarball(
        {"en.json": ["Zebra", "apple", " apple ", "", "Two Words"], "fr.json": [decomposed, "zut"]}
    )
    assert word_list(data, "en") == ["apple", "two words", "zebra"]
    assert word_list(data, "fr") == ["bourré", "zut"]  # composed: as names and requests are


@pytest.mark.parametrize("language", sorted(wordlists.LANGUAGES))
def test_the_committed_lists_are_what_the_command_writes(language: str) -> None:
    path = wordlists.OUT / wordlists.LANGUAGES[language]
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [line for line in lines if not line.startswith("#")]
    assert entries == sorted(set(entries)) and all(e == e.lower() and e.strip() == e for e in entries)
    assert all(unicodedata.is_normalized("NFC", e) for e in entries)
    assert path.read_text(encoding="utf-8") == render(entries, language)
    assert wordlists.SHA256 in lines[0] and f"package/{language}.json" in lines[0] and "CC BY 4.0" in lines[1]

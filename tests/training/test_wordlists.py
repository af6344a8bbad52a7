"""python -m training wordlists: the LDNOOBW list read out of the npm package's tarball, and the
committed file being what that command writes (header, order, entries)."""

from __future__ import annotations

import io
import json
import tarfile

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
    data = tarball({"en.json": ["Zebra", "apple", " apple ", "", "Two Words"], "fr.json": ["merde"]})
    assert word_list(data, "en") == ["apple", "two words", "zebra"]
    assert word_list(data, "fr") == ["merde"]


def test_the_committed_list_is_what_the_command_writes() -> None:
    path = wordlists.OUT / wordlists.LANGUAGES["en"]
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [line for line in lines if not line.startswith("#")]
    assert entries == sorted(set(entries)) and all(e == e.lower() and e.strip() == e for e in entries)
    assert path.read_text(encoding="utf-8") == render(entries, "en")
    assert wordlists.SHA256 in lines[0] and "CC BY 4.0" in lines[1]

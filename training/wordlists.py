"""
Build the safe filter's word lists that come from npm packages, into app/inference/words/.

    python -m training wordlists [--out app/inference/words]

The LDNOOBW list (List of Dirty, Naughty, Obscene and Otherwise Bad Words, CC BY 4.0) as the npm
package naughty-words ships it: the package is fetched with `npm pack` at the pinned version, its
tarball checked against the pinned sha256, and its lists for English and the languages of the
countries names-world holds written as one lowercase entry (NFC) per line, sorted, with a header
naming the source and licence. The package has no list for Hebrew or Icelandic. The service reads
the written files (app/inference/safety.py); it never fetches anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
import unicodedata
from pathlib import Path

PACKAGE = "naughty-words"
VERSION = "1.2.0"
SHA256 = "c34b05e10a97ec7b9e0c3dd91d09888187c0f08d0812eaea79679795585b217e"
# English, and the languages of names-world's countries that the package has a list for: Danish,
# Dutch (Belgium), Finnish, French (France, Belgium, Switzerland), German (Austria, Germany,
# Switzerland), Italian (Switzerland), Norwegian, Russian, Spanish (Spain, Uruguay), Swedish (Sweden,
# Finland)
LANGUAGES = {
    code: f"ldnoobw-{code}.txt" for code in ("en", "da", "de", "es", "fi", "fr", "it", "nl", "no", "ru", "sv")
}
OUT = Path(__file__).resolve().parent.parent / "app" / "inference" / "words"


def fetch_tarball() -> bytes:
    """The package's tarball, from the npm registry, checked against SHA256."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True, capture_output=True
        )
        data = (Path(tmp) / f"{PACKAGE}-{VERSION}.tgz").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{PACKAGE}-{VERSION}.tgz has sha256 {digest}, expected {SHA256}")
    return data


def word_list(tarball: bytes, language: str) -> list[str]:
    """The package's list for `language` (package/<language>.json), in NFC, lowercased, sorted, unique."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile(f"package/{language}.json")
        if member is None:
            raise RuntimeError(f"{PACKAGE}-{VERSION} has no {language}.json")
        words = json.loads(member.read().decode("utf-8"))
    return sorted({unicodedata.normalize("NFC", w.strip().lower()) for w in words if w.strip()})


def render(words: list[str], language: str) -> str:
    header = (
        f"# {PACKAGE} {VERSION} (npm), package/{language}.json, sha256 of the tarball {SHA256}\n"
        "# LDNOOBW: List of Dirty, Naughty, Obscene and Otherwise Bad Words, CC BY 4.0\n"
        "# written by python -m training wordlists; one entry per line, lowercase, sorted\n"
    )
    return header + "".join(f"{w}\n" for w in words)


def build(out: Path = OUT) -> list[Path]:
    tarball = fetch_tarball()
    written = []
    for language, file_name in LANGUAGES.items():
        path = out / file_name
        path.write_text(render(word_list(tarball, language), language), encoding="utf-8")
        written.append(path)
    return written

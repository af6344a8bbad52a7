"""Every damaged byte of a checkpoint is refused at load, naming the file and the damaged part:
each kind of archive entry, the zip records, truncation, appended bytes, two files swapped, and
meta.json rewritten into a valid archive. With SHA256SUMS beside the files (as shipped) and
without it (a user's own folder, where CRC-32s and digests.json still name the entry)."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from app.inference.checkpoint import CheckpointError
from app.inference.registry import load_registry
from checkpoint_format import MANIFEST, ArchiveError, check_archive, entry_digests, read_manifest, sha256_hex
from tests.app.conftest import REPO_MODELS, app_client

VICTIM = "names-male.pt"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A copy of the shipped models folder, SHA256SUMS included."""
    folder = tmp_path / "models"
    folder.mkdir()
    for p in [*REPO_MODELS.glob("*.pt"), REPO_MODELS / MANIFEST]:
        shutil.copy(p, folder / p.name)
    return folder


def entry_offset(data: bytes, suffix: str, within: str = "") -> tuple[int, int]:
    """Where the content of the first entry whose name ends in `suffix` (and contains `within`)
    starts, and its size."""
    with zipfile.ZipFile(REPO_MODELS / VICTIM) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(suffix) and within in i.filename)
    h = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[h + 26 : h + 30])
    return h + 30 + name_len + extra_len, info.compress_size


def local_name(data: bytes, suffix: str) -> int:
    """Where the name of the entry ending in `suffix` starts in its local header."""
    with zipfile.ZipFile(REPO_MODELS / VICTIM) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(suffix))
    return info.header_offset + 30


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def central_directory(data: bytes) -> int:
    return struct.unpack("<I", data[-22 + 16 : -22 + 20])[0]


# (what to damage, where in the file, the part the message must name)
ENTRIES = [
    ("items.txt", lambda d: entry_offset(d, "extra/items.txt")[0] + 100, "items.txt (the training items)"),
    ("meta.json", lambda d: entry_offset(d, "extra/meta.json")[0] + 50, "meta.json"),
    ("weights", lambda d: entry_offset(d, "/data/1")[0] + 7, "the weights (data/1)"),
    # the exporter's code: export.py, or export/___torch_mangle_N.py when several were exported in one
    # process (TorchScript renames a class compiled again)
    ("code", lambda d: sum(entry_offset(d, ".py", "/training/export")) - 9, "the TorchScript code (code/"),
    ("structure", lambda d: entry_offset(d, "/data.pkl")[0] + 30, "the module structure (data.pkl)"),
    ("digests", lambda d: entry_offset(d, "extra/digests.json")[0] + 40, "digests.json"),
    ("version", lambda d: entry_offset(d, "/version")[0], "the entry version"),
    # the zip records: an entry's name in its local header, and its size in the central directory
    ("local header", lambda d: local_name(d, "/data/3") + 3, "records are damaged around data/3"),
    ("central directory", lambda d: central_directory(d) + 20, "is damaged"),
]


@pytest.mark.parametrize("manifest", [True, False], ids=["with-manifest", "without-manifest"])
@pytest.mark.parametrize("kind, where, part", ENTRIES, ids=[e[0] for e in ENTRIES])
def test_one_damaged_byte_is_refused_naming_the_part(
    models: Path,
    manifest: bool,
    kind: str,
    where,
    part: str,  # type: ignore[no-untyped-def]
) -> None:
    if not manifest:
        (models / MANIFEST).unlink()
    victim = models / VICTIM
    flip(victim, where(victim.read_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_registry(models, allow_unverified=not manifest)
    message = str(info.value)
    assert message.startswith(f"{victim}: ") and "\n" not in message
    assert part in message, message


def test_a_record_byte_no_reader_uses_is_caught_by_the_manifest_only(models: Path) -> None:
    victim = models / VICTIM
    cd = central_directory(victim.read_bytes())
    flip(victim, cd + 12)  # the last-modified date of the first entry: no check reads it
    with pytest.raises(CheckpointError, match="does not match its sha256 in SHA256SUMS"):
        load_registry(models)
    (models / MANIFEST).unlink()
    # harmless to the content
    assert VICTIM.removesuffix(".pt") in load_registry(models, allow_unverified=True).models


@pytest.mark.parametrize("manifest", [True, False], ids=["with-manifest", "without-manifest"])
def test_truncated_and_appended_files_are_refused(models: Path, manifest: bool) -> None:
    if not manifest:
        (models / MANIFEST).unlink()
    victim = models / VICTIM
    good = victim.read_bytes()
    for data, message in [
        (good[:-10], "end record is missing"),
        (good[: len(good) // 2], "end record is missing"),
        (good + b"\x00" * 3, "3 bytes follow the archive's end record"),
        (good + good[-22:], "the archive's records are damaged"),  # a second end record
    ]:
        victim.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            load_registry(models, allow_unverified=not manifest)
        assert str(victim) in str(info.value) and message in str(info.value)


def test_swapped_files_are_refused(models: Path) -> None:
    a, b = models / "names.pt", models / "surnames.pt"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(CheckpointError, match=r"names\.pt: does not match its sha256 in SHA256SUMS"):
        load_registry(models)
    (models / MANIFEST).unlink()  # without the manifest, the name inside the file gives it away
    with pytest.raises(CheckpointError, match=r"names\.pt: holds model 'surnames'.*renamed or swapped"):
        load_registry(models, allow_unverified=True)


def rewrite_meta(path: Path, change: dict[str, object], update_digests: bool) -> None:
    """Rewrite the archive with a changed meta.json, every CRC-32 valid (as a tool would)."""
    with zipfile.ZipFile(path) as z:
        entries = [(i, z.read(i)) for i in z.infolist()]
    out = path.with_name("rewritten.tmp")
    root = entries[0][0].filename.split("/")[0]
    contents = {}
    for info, body in entries:
        rel = info.filename.split("/", 1)[1]
        if rel == "extra/meta.json":
            meta = json.loads(body)
            meta["metrics"].update(change)
            body = json.dumps(meta, indent=2, sort_keys=True).encode()
        contents[rel] = body
    if update_digests:
        del contents["extra/digests.json"]
        with zipfile.ZipFile(out, "w") as z:
            for rel, body in contents.items():
                z.writestr(f"{root}/{rel}", body)
        contents["extra/digests.json"] = json.dumps(entry_digests(out.read_bytes())).encode()
    with zipfile.ZipFile(out, "w") as z:
        for rel, body in contents.items():
            z.writestr(f"{root}/{rel}", body)
    out.replace(path)


def test_meta_rewritten_with_a_changed_test_loss_is_refused(models: Path) -> None:
    victim = models / VICTIM
    original = victim.read_bytes()
    rewrite_meta(victim, {"test_loss": 1.5}, update_digests=False)
    assert zipfile.ZipFile(victim).testzip() is None  # a valid archive: every CRC-32 matches
    # the manifest is checked first, and the message names the damaged part
    with pytest.raises(
        CheckpointError, match=r"names-male\.pt: does not match its sha256 .* meta\.json does not"
    ):
        load_registry(models)
    (models / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match=r"meta\.json does not match its digest"):
        load_registry(models, allow_unverified=True)
    # a rewrite that updates digests.json too is caught by the manifest, and only by it
    victim.write_bytes(original)
    shutil.copy(REPO_MODELS / MANIFEST, models / MANIFEST)
    rewrite_meta(victim, {"test_loss": 1.5}, update_digests=True)
    with pytest.raises(CheckpointError, match="does not match its sha256 in SHA256SUMS"):
        load_registry(models)


def test_damaged_file_is_skipped_when_asked(models: Path, caplog: pytest.LogCaptureFixture) -> None:
    victim = models / VICTIM
    flip(victim, entry_offset(victim.read_bytes(), "extra/items.txt")[0] + 5)
    registry = load_registry(models, skip_bad=True)
    assert registry.names() == sorted(p.stem for p in models.glob("*.pt") if p != victim)
    assert "items.txt (the training items) is damaged" in registry.skipped[victim.name]
    assert any(str(victim) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_unlisted_file_is_refused_and_a_bad_manifest_line_too(models: Path) -> None:
    sums = read_manifest(models)
    assert sums is not None
    del sums[VICTIM]
    (models / MANIFEST).write_text("".join(f"{v}  {k}\n" for k, v in sums.items()))
    with pytest.raises(CheckpointError, match=rf"{VICTIM}: not listed in SHA256SUMS"):
        load_registry(models)
    (models / MANIFEST).write_text("not a digest  names.pt\n")
    with pytest.raises(CheckpointError, match="SHA256SUMS: line 1 is not"):
        load_registry(models)


def test_manifest_matches_sha256sum_format() -> None:
    sums = read_manifest(REPO_MODELS)
    assert sums is not None and sorted(sums) == sorted(p.name for p in REPO_MODELS.glob("*.pt"))
    for name, digest in sums.items():
        assert sha256_hex((REPO_MODELS / name).read_bytes()) == digest
    text = (REPO_MODELS / MANIFEST).read_text()
    assert all(len(line.split("  ")) == 2 for line in text.splitlines())


@pytest.mark.anyio
async def test_models_report_how_each_was_checked(models: Path) -> None:
    async with app_client(models_dir=models) as client:
        info = (await client.get("/models")).json()
        assert info["manifest"] is True
        assert all(m["integrity"] == {"crc32": True, "digests": True, "manifest": True} for m in info["data"])
    (models / MANIFEST).unlink()
    async with app_client(models_dir=models, allow_unverified=True) as client:
        info = (await client.get("/models")).json()
        assert info["manifest"] is False
        assert all(m["integrity"]["manifest"] is False for m in info["data"])


def test_a_folder_without_a_manifest_is_refused_unless_allowed(
    models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (models / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="no SHA256SUMS to check the checkpoints against"):
        load_registry(models)
    registry = load_registry(models, allow_unverified=True)
    assert not registry.manifest and VICTIM.removesuffix(".pt") in registry.models
    assert any("UNVERIFIED" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_the_digests_may_be_kept_apart_from_the_models(models: Path, tmp_path: Path) -> None:
    kept = tmp_path / "expected" / "models.sha256"
    kept.parent.mkdir()
    (models / MANIFEST).replace(kept)
    registry = load_registry(models, manifest_path=kept)
    assert registry.manifest and all(m.integrity.manifest for m in registry.models.values())
    flip(models / VICTIM, entry_offset((models / VICTIM).read_bytes(), "extra/items.txt")[0] + 5)
    with pytest.raises(CheckpointError, match=rf"{VICTIM}: does not match its sha256 in SHA256SUMS"):
        load_registry(models, manifest_path=kept)
    with pytest.raises(CheckpointError, match=r"the manifest \(NAMEGEN_MANIFEST\) does not exist"):
        load_registry(models, manifest_path=tmp_path / "absent")


def test_a_format_1_checkpoint_without_digests_is_refused_unless_allowed(models: Path) -> None:
    """Format 1 carries no digests.json: its entries can only be checked against their CRC-32s."""
    victim = models / VICTIM
    rewrite_meta(victim, {}, update_digests=False)  # the same content, re-zipped...
    with zipfile.ZipFile(victim) as z:
        entries = {i.filename: z.read(i) for i in z.infolist() if not i.filename.endswith("digests.json")}
    meta_name = next(k for k in entries if k.endswith("extra/meta.json"))
    entries[meta_name] = json.dumps({**json.loads(entries[meta_name]), "format_version": 1}).encode()
    with zipfile.ZipFile(victim, "w") as z:  # ...as format 1, without digests.json
        for name, body in entries.items():
            z.writestr(name, body)
    sums = read_manifest(models)
    assert sums is not None
    (models / MANIFEST).write_text(
        "".join(f"{v}  {k}\n" for k, v in {**sums, VICTIM: sha256_hex(victim.read_bytes())}.items())
    )
    with pytest.raises(CheckpointError, match=rf"{VICTIM}: format 1 carries no digests.json"):
        load_registry(models)
    assert not load_registry(models, allow_unverified=True).models["names-male"].integrity.digests


def test_only_regular_files_within_the_size_cap_are_read(models: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.pt"
    (models / VICTIM).replace(target)
    (models / VICTIM).symlink_to(target)  # a link is not followed, even to a good checkpoint
    with pytest.raises(CheckpointError, match=rf"{VICTIM}: a symbolic link; only regular files are read"):
        load_registry(models)
    (models / VICTIM).unlink()
    os.mkfifo(models / VICTIM)  # opened without blocking: no writer is waited for
    with pytest.raises(CheckpointError, match=rf"{VICTIM}: not a regular file"):
        load_registry(models)
    (models / VICTIM).unlink()
    target.replace(models / VICTIM)
    size = max(p.stat().st_size for p in models.glob("*.pt"))
    assert load_registry(models, max_bytes=size).models
    with pytest.raises(CheckpointError, match=r"\.pt: \d+ bytes, over the limit of 1000000"):
        load_registry(models, max_bytes=1_000_000)


def test_the_manifest_is_checked_before_the_archive_is_read(models: Path) -> None:
    victim = models / VICTIM
    victim.write_bytes(b"\x00" * 1000)  # not an archive at all: the sha256 says so first
    with pytest.raises(
        CheckpointError, match=rf"{VICTIM}: does not match its sha256 in SHA256SUMS: not a zip"
    ):
        load_registry(models)


def test_an_archive_that_would_inflate_past_the_cap_is_refused_unread() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data/0", b"\x00" * (4 << 20))  # 4 MB of zeros: a few kilobytes deflated
    data = buffer.getvalue()
    assert len(data) < 64 << 10
    with pytest.raises(ArchiveError, match=r"would take 4194304 bytes, over the limit of 1048576"):
        check_archive(data, max_content=1 << 20)


def test_the_size_cap_also_bounds_what_reading_may_inflate(models: Path, tmp_path: Path) -> None:
    """An archive within the file-size cap whose entries declare more content than twice the cap
    is refused before anything is inflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/extra/items.txt", b"a\n" * (8 << 20))  # 16 MB, deflated to a few KB
    (models / "bomb.pt").write_bytes(buffer.getvalue())
    sums = read_manifest(models)
    assert sums is not None
    sums["bomb.pt"] = sha256_hex(buffer.getvalue())
    (models / MANIFEST).write_text("".join(f"{v}  {k}\n" for k, v in sums.items()))
    biggest = max(p.stat().st_size for p in models.glob("*.pt"))  # every file within the cap
    assert 2 * biggest < 16 << 20
    with pytest.raises(CheckpointError, match=r"bomb\.pt: its entries would take \d+ bytes, over the limit"):
        load_registry(models, max_bytes=biggest)

"""
The checkpoint format shared by training/ (which writes checkpoints) and app/ (which reads them).
Standard library only, so that importing it keeps the layering rule: app/ never imports training/.

A checkpoint `models/NAME.pt` is a TorchScript archive (a zip file) whose entries all sit under
one root folder, NAME. Besides TorchScript's own entries (`code/...`, `data/N` weights, `data.pkl`,
`constants.pkl`, `version`, `byteorder`, `.data/serialization_id`) it carries extra files:

- `extra/meta.json`: the metadata (format version, name, vocabulary, metrics, corpus, ...);
- `extra/items.txt`: the training items, one per line;
- `extra/digests.json` (format 2): the sha256 of every other entry, keyed by its path below the
  root, written at export time. Two entries are left out: digests.json itself, and TorchScript's
  `.data/serialization_id`, a random id that differs on every save of the same module.

Beside the checkpoints, `SHA256SUMS` (the `sha256sum` format: `<hex>  <file>` per line) holds the
sha256 of each whole file. The two checks complement each other: the digests travel inside the
file and name the damaged entry wherever the file goes; the manifest covers every byte, the zip
records and digests.json included, but only where it is kept beside the files. Every entry's
CRC-32 in the zip records is checked too. Reading an archive inflates its compressed entries (torch
deflates its code files) to no more than their declared sizes, whose sum is capped before anything
is read, so a small file cannot expand into a large one.

    check_archive(data)        # -> ArchiveReport, or ArchiveError naming the damaged part
    read_manifest(folder)      # -> {file name: sha256}, or None where there is no SHA256SUMS
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = 2  # 2: extra/digests.json; 1: without it (still read)
SUPPORTED_FORMATS = (1, 2)
BOUNDARY = "."  # token 0: the start and end of every item, and the left padding of the context
END_LABEL = "<end>"  # what the API calls the boundary when it comes next
META_FILE = "meta.json"  # the extra files, as torch.jit.save's _extra_files names them
ITEMS_FILE = "items.txt"
DIGESTS_FILE = "digests.json"
MANIFEST = "SHA256SUMS"
SERIALIZATION_ID = ".data/serialization_id"
DEFAULT_MAX_CONTENT = 256 << 20  # what an archive's entries may add up to, read, by default
# a model's name: what requests pass as `model`, and the checkpoint's file name before .pt
MODEL_NAME_MAX = 64  # characters of a model name at most
MODEL_NAME_RE = re.compile(rf"^[a-z0-9][a-z0-9_-]{{0,{MODEL_NAME_MAX - 1}}}$")
UNDIGESTED = frozenset({f"extra/{DIGESTS_FILE}", SERIALIZATION_ID})


class ArchiveError(ValueError):
    """A damaged or inconsistent archive; the message names the damaged part."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_of(entry: str) -> str:
    """What an entry (its path below the archive root) holds, in words for error messages."""
    if entry == f"extra/{META_FILE}":
        return META_FILE
    if entry == f"extra/{ITEMS_FILE}":
        return f"{ITEMS_FILE} (the training items)"
    if entry == f"extra/{DIGESTS_FILE}":
        return DIGESTS_FILE
    if entry.startswith("data/"):
        return f"the weights ({entry})"
    if entry.startswith("code/"):
        return f"the TorchScript code ({entry})"
    if entry == "data.pkl":
        return "the module structure (data.pkl)"
    return f"the entry {entry}"


@dataclass(frozen=True)
class ArchiveReport:
    root: str  # the folder every entry sits under
    entries: dict[str, bytes]  # path below the root -> content, every one checked against its CRC-32
    digests: bool  # whether extra/digests.json was there and every digest matched


def _end_record_offset(data: bytes) -> int:
    """Offset of the zip's end-of-central-directory record, checking that nothing follows it."""
    # a zip64 archive ends with the same 22-byte record; its comment, if any, is the last thing
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or at + 22 > len(data):
        raise ArchiveError("the archive's end record is missing: the file is truncated or not a zip archive")
    (comment_length,) = struct.unpack("<H", data[at + 20 : at + 22])
    if at + 22 + comment_length != len(data):
        extra = len(data) - (at + 22 + comment_length)
        raise ArchiveError(f"{extra} bytes follow the archive's end record: the file was appended to or cut")
    return at


def _check_record(data: bytes, info: zipfile.ZipInfo, name: str) -> None:
    """The central directory's record of an entry agrees with the entry's own local header and data
    descriptor (CRC-32 and sizes). zipfile reads a stored entry by its uncompressed size alone, so a
    damaged compressed size in the central directory would pass it and fail torch's reader."""
    damaged = ArchiveError(
        f"the archive's central directory is damaged (its record of {name} disagrees with the entry's own)"
    )
    h = info.header_offset
    try:
        header = struct.unpack("<IHHHHHIIIHH", data[h : h + 30])
    except struct.error:
        raise damaged from None
    sig, _, flags, _, _, _, crc, csize, usize, nlen, elen = header
    stored = info.compress_type == zipfile.ZIP_STORED
    if sig != 0x04034B50 or (stored and info.compress_size != info.file_size):
        raise damaged
    if flags & 0x08:  # sizes and CRC follow the data, in a descriptor (what torch writes)
        at = h + 30 + nlen + elen + info.compress_size
        if data[at : at + 4] == b"PK\x07\x08":
            at += 4
        short = struct.unpack("<III", data[at : at + 12]) if at + 12 <= len(data) else None
        wide = struct.unpack("<IQQ", data[at : at + 20]) if at + 20 <= len(data) else None  # zip64
        record = (info.CRC, info.compress_size, info.file_size)
        if record not in (short, wide):
            raise damaged
    elif (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size) and csize != 0xFFFFFFFF:
        raise damaged


def check_archive(data: bytes, max_content: int = DEFAULT_MAX_CONTENT) -> ArchiveReport:
    """Read every entry of a checkpoint archive, checking its structure, every entry's CRC-32 and,
    when the archive has extra/digests.json, every entry's sha256. The entries' declared sizes may
    add up to `max_content` bytes at most (each is read up to its declared size, no further).
    Raises ArchiveError naming the damaged part."""
    if not data.startswith(b"PK\x03\x04"):
        raise ArchiveError("not a zip archive (the first bytes are not a zip entry header)")
    _end_record_offset(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error) as e:
        raise ArchiveError(f"the archive's records are damaged ({e})") from None
    if not infos:
        raise ArchiveError("the archive has no entries")
    declared = sum(info.file_size for info in infos)
    if declared > max_content:
        raise ArchiveError(f"its entries would take {declared} bytes, over the limit of {max_content}")
    root = infos[0].filename.split("/", 1)[0]
    entries: dict[str, bytes] = {}
    for info in infos:
        head, sep, rest = info.filename.partition("/")
        if head != root or not sep or not rest:
            raise ArchiveError(
                f"the archive's records are damaged (entry {info.filename!r} is not under {root}/)"
            )
        _check_record(data, info, rest)
        try:
            entries[rest] = archive.read(info)  # checks the entry's CRC-32
        except zipfile.BadZipFile as e:
            if "CRC" in str(e):
                raise ArchiveError(f"{part_of(rest)} is damaged (its CRC-32 does not match)") from None
            raise ArchiveError(f"the archive's records are damaged around {rest} ({e})") from None
        except Exception as e:  # zlib errors in a compressed entry, bad header fields...
            raise ArchiveError(f"{part_of(rest)} is damaged ({type(e).__name__}: {e})") from None
    raw = entries.get(f"extra/{DIGESTS_FILE}")
    if raw is None:
        return ArchiveReport(root, entries, digests=False)
    try:
        digests = json.loads(raw)
        if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
            raise ValueError("not an object of strings")
    except ValueError as e:
        raise ArchiveError(f"{DIGESTS_FILE} is not a JSON object of digests ({e})") from None
    for name in sorted(set(entries) - UNDIGESTED):
        if name not in digests:
            raise ArchiveError(f"{part_of(name)} was added after export (no digest for it in {DIGESTS_FILE})")
        if sha256_hex(entries[name]) != digests[name]:
            raise ArchiveError(f"{part_of(name)} does not match its digest in {DIGESTS_FILE}")
    missing = sorted(set(digests) - set(entries))
    if missing:
        raise ArchiveError(f"{part_of(missing[0])} is missing from the archive")
    return ArchiveReport(root, entries, digests=True)


def entry_digests(data: bytes) -> dict[str, str]:
    """The digests.json content for an archive: sha256 of each entry but the undigested ones."""
    report = check_archive(data)
    return {name: sha256_hex(body) for name, body in sorted(report.entries.items()) if name not in UNDIGESTED}


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, which must be a regular file (not a symbolic link, FIFO, device or
    folder) of at most `max_bytes`. Opened without following a link and without blocking (a FIFO
    would otherwise wait for a writer), then checked on the open file itself. Raises ArchiveError
    saying which rule the file breaks, OSError when it cannot be opened."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW on a symbolic link
            raise ArchiveError("a symbolic link; only regular files are read") from None
        raise
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ArchiveError("not a regular file (a FIFO, device or folder); only regular files are read")
        if info.st_size > max_bytes:
            raise ArchiveError(f"{info.st_size} bytes, over the limit of {max_bytes}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise ArchiveError(f"over {max_bytes} bytes, the limit")
    return data


def read_manifest(folder: Path) -> dict[str, str] | None:
    """{file name: sha256} from folder/SHA256SUMS, or None when the folder has none. Raises
    ArchiveError for a line that is not `<64 hex digits>  <name>`."""
    return read_manifest_file(folder / MANIFEST)


def read_manifest_file(path: Path) -> dict[str, str] | None:
    """{file name: sha256} from a file in sha256sum's format, or None when there is no such file.
    Raises ArchiveError for a line that is not `<64 hex digits>  <name>`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ArchiveError(f"{path}: cannot read ({e})") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name.startswith(("*", " ")) else name  # binary or text mode marker
        if not sep or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest) or not name:
            raise ArchiveError(f"{path}: line {number} is not '<sha256>  <file>'")
        sums[name] = digest
    return sums


def write_manifest(folder: Path, updates: dict[str, str]) -> Path:
    """Set the given files' digests in folder/SHA256SUMS (created if absent), atomically; the
    other lines stay as they were. Lines are sorted by file name."""
    sums = read_manifest(folder) or {}
    sums.update(updates)
    path = folder / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())), encoding="utf-8")
    os.replace(tmp, path)
    return path

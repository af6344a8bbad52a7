"""Loading checkpoints: every fault at start-up is refused with a message naming the file, or
skipped when NAMEGEN_SKIP_BAD_MODELS is set; forward-only checkpoints still work."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from app.registry import CheckpointError, load_checkpoint, load_registry
from tests.app.conftest import REPO_MODELS, app_client
from tests.conftest import read_checkpoint

SOURCE = REPO_MODELS / "names-male.pt"


def resave(src: Path, dst: Path, meta: str | None, items: str | None) -> Path:
    module, _ = read_checkpoint(src)
    files = {}
    if meta is not None:
        files["meta.json"] = meta
    if items is not None:
        files["items.txt"] = items
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, str(dst), _extra_files=files)
    return dst


def good_meta() -> dict[str, object]:
    return json.loads(read_checkpoint(SOURCE)[1]["meta.json"])


def corrupt(d: Path) -> Path:
    p = d / "corrupt.pt"
    p.write_bytes(b"\x00not a zip archive" * 100)
    return p


def truncated(d: Path) -> Path:
    data = SOURCE.read_bytes()
    p = d / "truncated.pt"
    p.write_bytes(data[: len(data) // 2])
    return p


def no_meta(d: Path) -> Path:
    return resave(SOURCE, d / "nometa.pt", None, "anna\n")


def bad_json(d: Path) -> Path:
    return resave(SOURCE, d / "badjson.pt", "{not json", "anna\n")


def meta_lacking_vocab(d: Path) -> Path:
    meta = good_meta()
    del meta["vocab"]
    return resave(SOURCE, d / "novocab.pt", json.dumps(meta), "anna\n")


def wrong_vocab_size(d: Path) -> Path:
    meta = good_meta()
    meta["vocab"] = [".", "a", "b"]
    return resave(SOURCE, d / "vocab3.pt", json.dumps(meta), "anna\n")


def no_items(d: Path) -> Path:
    return resave(SOURCE, d / "noitems.pt", json.dumps(good_meta()), None)


def unreadable(d: Path) -> Path:
    p = d / "dir.pt"
    p.mkdir()  # root can read any file, so stand in for an unreadable one with a directory
    return p


FAULTS = [
    (corrupt, "not a loadable TorchScript checkpoint"),
    (truncated, "not a loadable TorchScript checkpoint"),
    (no_meta, "no meta.json"),
    (bad_json, "meta.json is not valid JSON"),
    (meta_lacking_vocab, "lacks vocab"),
    (wrong_vocab_size, "forward must return (B, 3) logits"),
    (no_items, "no items.txt"),
    (unreadable, "cannot read"),
]


@pytest.mark.parametrize("make, message", FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_bad_checkpoint_is_refused_naming_the_file(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(SOURCE, tmp_path / "good.pt")
    bad = make(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_registry(tmp_path)
    text = str(info.value)
    assert str(bad) in text and message in text and "\n" not in text


@pytest.mark.parametrize("make, message", FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_bad_checkpoint_is_skipped_when_asked(
    tmp_path: Path,
    make,
    message: str,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutil.copy(SOURCE, tmp_path / "good.pt")
    bad = make(tmp_path)
    registry = load_registry(tmp_path, skip_bad=True)
    assert registry.names() == ["names-male"] and registry.default == "names-male"
    assert list(registry.skipped) == [str(bad)] and message in registry.skipped[str(bad)]
    assert any(str(bad) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_registry(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_registry(tmp_path / "absent")
    corrupt(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint could be loaded"):
        load_registry(tmp_path, skip_bad=True)


def test_two_checkpoints_claiming_one_name(tmp_path: Path) -> None:
    shutil.copy(SOURCE, tmp_path / "a.pt")
    shutil.copy(SOURCE, tmp_path / "b.pt")
    with pytest.raises(CheckpointError) as info:
        load_registry(tmp_path)
    assert "b.pt" in str(info.value) and "a.pt" in str(info.value) and "already taken" in str(info.value)


def test_missing_default_model(tmp_path: Path) -> None:
    shutil.copy(SOURCE, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="default model 'names' is not among"):
        load_registry(tmp_path, default="names")


@pytest.mark.anyio
async def test_app_refuses_to_start_on_a_bad_checkpoint(tmp_path: Path) -> None:
    corrupt(tmp_path)
    with pytest.raises(CheckpointError, match=r"corrupt\.pt"):
        async with app_client(models_dir=tmp_path):
            pass


class ForwardOnly(torch.nn.Module):
    """A checkpoint from before the incremental methods: forward only."""

    def __init__(self, inner: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inner(idx)


@pytest.mark.anyio
async def test_forward_only_checkpoint_still_works(tmp_path: Path) -> None:
    module, extra = read_checkpoint(SOURCE)
    old = torch.jit.script(ForwardOnly(module))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(old, str(tmp_path / "names-male.pt"), _extra_files=extra)
    loaded = load_checkpoint(tmp_path / "names-male.pt")
    assert loaded.incremental is False
    body = {"n": 25, "seed": 4, "prefix": "j", "model": "names-male"}
    async with app_client(models_dir=tmp_path) as old_client, app_client() as new_client:
        old_resp = (await old_client.post("/generate", json=body)).json()
        new_resp = (await new_client.post("/generate", json=body)).json()
        assert old_resp["names"] == new_resp["names"]  # same logits, same generator: same names
        info = (await old_client.get("/models/names-male")).json()
        assert info["incremental"] is False
        old_score = (await old_client.post("/score", json={"names": ["james"], "model": "names-male"})).json()
        new_score = (await new_client.post("/score", json={"names": ["james"], "model": "names-male"})).json()
        assert abs(old_score["scores"][0]["logprob"] - new_score["scores"][0]["logprob"]) < 1e-4

"""Loading checkpoints: every fault at start-up is refused with a message naming the file, or
skipped when NAMEGEN_SKIP_BAD_MODELS is set; forward-only checkpoints still work."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import torch

from app.inference.checkpoint import CheckpointError, load_checkpoint
from app.inference.engine import BatchLoop
from app.inference.registry import load_registry
from app.inference.safety import NameSets
from checkpoint_format import torchscript
from tests.app.conftest import REPO_MODELS, app_client
from tests.conftest import read_checkpoint

SOURCE = REPO_MODELS / "names-male.pt"


def resave(src: Path, dst: Path, meta: str | dict[str, object] | None, items: str | None) -> Path:
    """src's module saved again as dst, with this meta.json (a dict is named after dst and marked
    format 1, which needs no digests.json) and items.txt (None: left out)."""
    module, _ = read_checkpoint(src)
    files = {}
    if isinstance(meta, dict):
        meta = json.dumps({**meta, "name": dst.stem, "format_version": 1})
    if meta is not None:
        files["meta.json"] = meta
    if items is not None:
        files["items.txt"] = items
    torchscript.save(module, dst, files)
    return dst


def good_meta() -> dict[str, object]:
    return dict(json.loads(read_checkpoint(SOURCE)[1]["meta.json"]))


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
    return resave(SOURCE, d / "novocab.pt", meta, "anna\n")


def wrong_vocab_size(d: Path) -> Path:
    meta = good_meta()
    meta["vocab"] = [".", "a", "b"]
    return resave(SOURCE, d / "vocab3.pt", meta, "anna\n")


def vocab_not_nfc(d: Path) -> Path:
    meta = good_meta()
    meta["vocab"][5] = "\u212b"  # ANGSTROM SIGN, which NFC writes as Å
    return resave(SOURCE, d / "nfc.pt", {**meta, "name": "nfc"}, "anna\n")


def no_items(d: Path) -> Path:
    return resave(SOURCE, d / "noitems.pt", good_meta(), None)


def digests_missing(d: Path) -> Path:
    meta = json.dumps({**good_meta(), "name": "nodigests"})  # format 2, which needs digests.json
    return resave(SOURCE, d / "nodigests.pt", meta, "anna\n")


def renamed(d: Path) -> Path:
    p = d / "renamed.pt"
    shutil.copy(SOURCE, p)
    return p


def unreadable(d: Path) -> Path:
    p = d / "dir.pt"
    p.mkdir()  # root can read any file, so stand in for an unreadable one with a directory
    return p


FAULTS = [
    (corrupt, "not a zip archive"),
    (truncated, "end record is missing"),
    (no_meta, "no meta.json"),
    (bad_json, "meta.json is not valid JSON"),
    (meta_lacking_vocab, "lacks vocab"),
    (wrong_vocab_size, "forward must return (B, 3) logits"),
    (vocab_not_nfc, "vocab characters must be printable and in NFC; these are not: U+212B"),
    (no_items, "no items.txt"),
    (digests_missing, "format 2 needs digests.json"),
    (renamed, "holds model 'names-male'; a checkpoint is named after its model"),
    (unreadable, "cannot read"),
]


@pytest.mark.parametrize("make, message", FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_bad_checkpoint_is_refused_naming_the_file(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    bad = make(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_registry(tmp_path, allow_unverified=True)
    text = str(info.value)
    assert str(bad) in text and message in text and "\n" not in text


@pytest.mark.parametrize("make, message", FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_bad_checkpoint_is_skipped_when_asked(
    tmp_path: Path,
    make,
    message: str,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    bad = make(tmp_path)
    registry = load_registry(tmp_path, skip_bad=True, allow_unverified=True)
    assert registry.names() == ["names-male"] and registry.default == "names-male"
    assert list(registry.skipped) == [bad.name] and message in registry.skipped[bad.name]
    assert str(bad.parent) not in registry.skipped[bad.name]  # no path: /models shows this
    assert any(str(bad) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_prepare_runs_on_each_model_that_loads_in_its_loading_thread(tmp_path: Path) -> None:
    """The service warms each batch loop as its model loads (app/main.py passes batching.warm_up):
    on the loading threads, for the models that load and not for one that is skipped."""
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    bad = FAULTS[0][0](tmp_path)
    seen: list[tuple[str, str]] = []
    registry = load_registry(
        tmp_path,
        skip_bad=True,
        allow_unverified=True,
        threads=2,
        prepare=lambda m: seen.append((m.name, threading.current_thread().name)),
    )
    assert [name for name, _ in seen] == registry.names() == ["names-male"]
    assert all(thread.startswith("load") for _, thread in seen) and bad.name in registry.skipped


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_registry(tmp_path, allow_unverified=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_registry(tmp_path / "absent", allow_unverified=True)
    corrupt(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint could be loaded"):
        load_registry(tmp_path, skip_bad=True, allow_unverified=True)


def test_missing_default_model(tmp_path: Path) -> None:
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    with pytest.raises(CheckpointError, match="default model 'names' is not among"):
        load_registry(tmp_path, default="names", allow_unverified=True)


@pytest.mark.anyio
async def test_app_refuses_to_start_on_a_bad_checkpoint(tmp_path: Path) -> None:
    corrupt(tmp_path)
    with pytest.raises(CheckpointError, match=r"corrupt\.pt"):
        async with app_client(models_dir=tmp_path, allow_unverified=True):
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
    old = torchscript.script(ForwardOnly(module))
    meta = json.dumps({**json.loads(extra["meta.json"]), "format_version": 1})
    torchscript.save(old, tmp_path / "names-male.pt", {**extra, "meta.json": meta})
    loaded = load_checkpoint(tmp_path / "names-male.pt", allow_unverified=True)
    assert loaded.incremental is False
    body = {"n": 25, "seed": 4, "prefix": "j", "model": "names-male"}
    async with (
        app_client(models_dir=tmp_path, allow_unverified=True) as old_client,
        app_client() as new_client,
    ):
        old_resp = (await old_client.post("/generate", json=body)).json()
        new_resp = (await new_client.post("/generate", json=body)).json()
        assert old_resp["names"] == new_resp["names"]  # same logits, same generator: same names
        info = (await old_client.get("/models/names-male")).json()
        assert info["incremental"] is False
        old_score = (await old_client.post("/score", json={"names": ["james"], "model": "names-male"})).json()
        new_score = (await new_client.post("/score", json={"names": ["james"], "model": "names-male"})).json()
        assert abs(old_score["scores"][0]["logprob"] - new_score["scores"][0]["logprob"]) < 1e-4


class WrongSlot(ForwardOnly):
    """A step that reads the wrong slot of the dilation-2 queue (state entries 1 and 2): right
    while both hold the boundary, wrong once real characters reach them."""

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return self.inner.init_state(batch_size)

    @torch.jit.export
    def step(self, idx: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        swapped = [state[0], state[2], state[1]] + state[3:]  # noqa: RUF005 (TorchScript has no *)
        return self.inner.step(idx, swapped)


class OtherStep(ForwardOnly):
    """init_state/step of another signature: step(idx) -> logits, no state."""

    @torch.jit.export
    def init_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size)

    @torch.jit.export
    def step(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inner(idx.unsqueeze(1))


class ShortState(WrongSlot):
    """A state whose tensors do not have the batch first."""

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [s[:1] for s in self.inner.init_state(batch_size)]

    @torch.jit.export
    def step(self, idx: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        logits, new = self.inner.step(idx, [s.expand(idx.size(0), -1).clone() for s in state])
        return logits, [s[:1] for s in new]


def wrapped(d: Path, wrapper: type[torch.nn.Module], name: str) -> Path:
    module, extra = read_checkpoint(SOURCE)
    meta = json.dumps({**json.loads(extra["meta.json"]), "name": name, "format_version": 1})
    path = d / f"{name}.pt"
    torchscript.save(torchscript.script(wrapper(module)), path, {**extra, "meta.json": meta})
    return path


STEP_FAULTS = [
    (WrongSlot, "step() disagrees with forward() on a probe of 35 tokens"),
    (OtherStep, "init_state/step failed: RuntimeError: step() expected at most 2 argument(s)"),
    (ShortState, "step()'s state must be a list of tensors with the batch"),
]


@pytest.mark.parametrize("wrapper, message", STEP_FAULTS, ids=[w.__name__ for w, _ in STEP_FAULTS])
def test_a_step_that_does_not_match_forward_or_the_loop_is_refused_or_skipped(
    tmp_path: Path, wrapper: type[torch.nn.Module], message: str
) -> None:
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    bad = wrapped(tmp_path, wrapper, "bad")
    with pytest.raises(CheckpointError) as info:
        load_registry(tmp_path, allow_unverified=True)
    assert str(info.value).startswith(f"{bad}: ") and message in str(info.value)
    assert "\n" not in str(info.value)
    registry = load_registry(tmp_path, skip_bad=True, allow_unverified=True)
    assert registry.names() == ["names-male"] and message in registry.skipped[bad.name]


class Unscriptable(BatchLoop):
    """A batch loop TorchScript cannot compile (try/except), for the error mapping."""

    @torch.jit.export
    def start(self, tokens: list[int], steps: int) -> None:
        try:
            self.min_rows = tokens[0]
        except IndexError:
            self.min_rows = steps


def test_a_batch_loop_that_fails_to_compile_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    monkeypatch.setattr("app.inference.checkpoint.BatchLoop", Unscriptable)
    with pytest.raises(CheckpointError) as info:
        load_registry(tmp_path, allow_unverified=True)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / SOURCE.name}: cannot compile the batch loop over it: ")
    assert "\n" not in message
    with pytest.raises(CheckpointError, match="no checkpoint could be loaded"):  # skipped, not raised
        load_registry(tmp_path, skip_bad=True, allow_unverified=True)


def test_the_old_one_character_check_would_have_passed_the_wrong_slot(tmp_path: Path) -> None:
    """What the probe adds: after the boundary and one character, the swapped slots still agree."""
    module, _ = read_checkpoint(wrapped(tmp_path, WrongSlot, "bad"))
    good, _ = read_checkpoint(SOURCE)
    with torch.inference_mode():
        a, b = module.init_state(1), good.init_state(1)
        worst = 0.0
        for token in [0, 5, 13, 13, 1, 14, 21, 5, 12, 12, 5]:  # ".emmanuelle"
            la, a = module.step(torch.tensor([token]), a)
            lb, b = good.step(torch.tensor([token]), b)
            worst = max(worst, float((la - lb).abs().max()))
            if token == 5 and worst == 0.0:
                first_char_agrees = True
    assert first_char_agrees and worst > 1.0


ERA = SOURCE.parent / "names-era.pt"


def era_with(d: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """names-era saved again with its conditions changed by `change` (format 1: no digests)."""
    module, extra = read_checkpoint(ERA)
    meta = json.loads(extra["meta.json"])
    change(meta["conditions"])
    path = d / "names-era.pt"
    torchscript.save(module, path, {**extra, "meta.json": json.dumps({**meta, "format_version": 1})})
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["fields"]["year"].update(bucket=0), "field 'year' needs bucket >= 1"),
        (lambda c: c["fields"]["year"].update(min=2030), "field 'year' needs bucket >= 1 and min <= max"),
        (lambda c: c["tokens"].pop(5), "no token for the condition decade=1930, sex=F"),
        # a decade the year field reaches that the table lacks (1870, from min 1870)
        (lambda c: c["fields"]["year"].update(min=1870), "no token for the condition decade=1870"),
    ],
    ids=["bucket-0", "min-over-max", "missing-combination", "unreachable-range"],
)
def test_an_inconsistent_condition_table_is_refused_at_load(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    """Each of these loaded before and answered 500 on every request that reached the gap (a
    division by the bucket, a lookup of a missing token)."""
    path = era_with(tmp_path, change)
    with pytest.raises(CheckpointError, match="field 'conditions' is malformed") as info:
        load_checkpoint(path, allow_unverified=True)
    assert message in str(info.value) and str(info.value).startswith(f"{path}: ")


def test_models_with_the_same_items_share_one_set() -> None:
    """The four given-name models learnt from different files hold the same 104,819 names (both
    sexes, every year 1880-2024): the registry keeps one set of them, not four; surnames keep their
    own. The safe filter reads the sets in place."""
    registry = load_registry(REPO_MODELS, threads=2)
    us = [registry.models[name].items for name in ("names", "names-female", "names-male", "names-era")]
    assert all(items is us[0] for items in us) and len(us[0]) == 104_819
    surnames = registry.models["surnames"].items
    assert surnames is not us[0]
    assert sum(s in us[0] for s in surnames) == 12_016  # Jordan, Lee, Grant...
    assert "emma" in us[0] and "smith" in surnames and "dutton" in us[0]
    allowed = registry.safety.allowed
    assert isinstance(allowed, NameSets) and len(allowed.sets) == 2
    assert "emma" in allowed and "smith" in allowed and "dutton" in allowed and "xqzv" not in allowed

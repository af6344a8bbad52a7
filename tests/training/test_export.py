"""Export: the TorchScript checkpoint matches the eager model, carries complete metadata, loads
without training/, and is written atomically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from checkpoint_format import check_archive, read_manifest, sha256_hex
from tests.conftest import load_parts
from training.__main__ import main
from training.config import TrainConfig
from training.corpus import read_items
from training.export import save_checkpoint
from training.metadata import build_meta
from training.train import train_model

TINY = dict(
    n_embd=8,
    hidden=(16, 16, 16, 16),
    dropout=0.1,
    steps=30,
    batch_size=32,
    eval_interval=15,
    progress=False,
    threads=1,
)


@pytest.fixture(scope="module")
def exported(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    items, sha = read_items(small_corpus)
    cfg = TrainConfig(corpus=str(small_corpus), name="tiny", **TINY)
    result = train_model(cfg, items)
    meta = build_meta(cfg, result, small_corpus, sha, len(items))
    path = save_checkpoint(result.model, meta, items, tmp_path_factory.mktemp("ck") / "tiny.pt")
    return result, items, path


def test_checkpoint_logits_equal_eager_model(exported) -> None:  # type: ignore[no-untyped-def]
    result, _, path = exported
    model = result.model.eval()
    module, _, _ = load_parts(path)
    ctx = model.context_length
    torch.manual_seed(1)
    idx = torch.randint(1, len(result.vocab), (6, ctx + 7))
    idx[:, : ctx - 1] = 0
    with torch.inference_mode():
        eager, _ = model(idx)  # (B, T - ctx + 1, V)
        for t in range(eager.size(1)):
            window = idx[:, t : t + ctx]
            assert (module(window) - eager[:, t]).abs().max().item() <= 1e-5
        # shorter input is left-padded with the boundary; longer is cut to the last ctx tokens
        assert torch.allclose(
            module(idx[:, -3:]),
            module(torch.cat([torch.zeros(6, ctx - 3, dtype=torch.long), idx[:, -3:]], 1)),
        )
        assert torch.allclose(module(idx), eager[:, -1], atol=1e-5)


def test_incremental_steps_equal_forward(exported) -> None:  # type: ignore[no-untyped-def]
    result, _, path = exported
    module, meta, _ = load_parts(path)
    ctx = meta["context_length"]
    torch.manual_seed(2)
    B, T = 4, ctx + 9  # longer than the context, so the queues must forget correctly
    tokens = torch.randint(0, len(result.vocab), (B, T))
    with torch.inference_mode():
        state = module.init_state(B)
        history = torch.zeros(B, 0, dtype=torch.long)
        for t in range(T):
            logits, state = module.step(tokens[:, t], state)
            history = torch.cat([history, tokens[:, t : t + 1]], 1)
            full = module(torch.cat([torch.zeros(B, 1, dtype=torch.long), history], 1))
            assert (logits - full).abs().max().item() <= 1e-5, f"step {t}"


def test_metadata_is_complete(exported) -> None:  # type: ignore[no-untyped-def]
    result, items, path = exported
    _, meta, stored_items = load_parts(path)
    assert stored_items == items
    for key in [
        "format_version",
        "name",
        "description",
        "vocab",
        "context_length",
        "architecture",
        "parameters",
        "metrics",
        "corpus",
        "training",
        "torch_version",
        "created_at",
    ]:
        assert key in meta, key
    assert meta["name"] == "tiny" and meta["vocab"][0] == "." and meta["context_length"] == 16
    assert meta["parameters"] == result.model.num_parameters()
    for key in ["train_loss", "val_loss", "test_loss", "split"]:
        assert key in meta["metrics"]
    assert meta["metrics"]["split"]["sizes"] == [320, 40, 40]
    for key in ["name", "source", "licence", "items", "sha256"]:
        assert key in meta["corpus"]
    assert meta["corpus"]["items"] == 400
    assert meta["training"]["wall_time_s"] >= 0 and meta["training"]["settings"]["steps"] == 30


def test_loads_without_training_package(exported) -> None:  # type: ignore[no-untyped-def]
    _, _, path = exported
    code = (
        "import sys; sys.modules['training'] = None\n"  # any import of training/ now fails
        "import torch\n"
        f"m = torch.jit.load({str(path)!r})\n"
        "x = torch.zeros(2, 5, dtype=torch.long)\n"
        "s = m.init_state(2); l, s = m.step(x[:, 0], s)\n"
        "print(tuple(m(x).shape), tuple(l.shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 27) (2, 27)"


def test_archive_root_is_the_file_stem_and_every_entry_has_a_digest(exported) -> None:  # type: ignore[no-untyped-def]
    _, _, path = exported
    data = path.read_bytes()
    report = check_archive(data)
    assert report.root == "tiny" and report.digests
    digests = json.loads(report.entries["extra/digests.json"])
    assert set(digests) == set(report.entries) - {"extra/digests.json", ".data/serialization_id"}
    assert read_manifest(path.parent) == {"tiny.pt": sha256_hex(data)}


def test_failed_save_leaves_no_file(exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    result, items, _ = exported

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        Path(args[1]).write_bytes(b"partial")  # as if the disk filled up mid-write
        raise OSError("disk full")

    monkeypatch.setattr(torch.jit, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(result.model, {"name": "x"}, items, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_reexport_keeps_weights_metadata_and_items(
    exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    _, items, path = exported
    assert main(["export", str(path), "--out", str(tmp_path)]) == 0
    assert f"{tmp_path / path.name}: re-exported from {path}" in capsys.readouterr().out
    before, meta_before, items_before = load_parts(path)
    after, meta_after, items_after = load_parts(tmp_path / path.name)
    assert meta_after == meta_before and items_after == items_before == items
    assert read_manifest(tmp_path) == {path.name: sha256_hex((tmp_path / path.name).read_bytes())}
    weights_before, weights_after = before.state_dict(), after.state_dict()
    assert weights_after.keys() == weights_before.keys()
    assert all(torch.equal(weights_after[k], weights_before[k]) for k in weights_before)
    tokens = torch.randint(0, len(meta_before["vocab"]), (5, 20), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.equal(after(tokens), before(tokens))
        s_before, s_after = before.init_state(5), after.init_state(5)
        for t in range(tokens.size(1)):  # the same logits, step after step
            l_before, s_before = before.step(tokens[:, t], s_before)
            l_after, s_after = after.step(tokens[:, t], s_after)
            assert torch.equal(l_after, l_before), f"step {t}"


def test_reexport_of_a_bad_file_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "not a TorchScript checkpoint" in err
    assert err.count("\n") == 1
    assert list(out.iterdir()) == []

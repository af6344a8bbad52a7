"""
Put trained checkpoints together as one: an ensemble whose next-character distribution is the mean
of its members' (training/model.py: Ensemble), exported as one checkpoint of the same contract.

    python -m training ensemble runs/a/names.pt runs/b/names.pt --corpus resources/names.txt \\
        --name names --out models/

The members must be models of the same corpus, vocabulary, context and split (the same --seed and
fractions; they differ by --train-seed, or by their architecture or chain of stages). Their
metrics are measured again as one model on that corpus's split (train/val/test, nats per
character, end of name counted), and meta.json keeps every member's own metrics and training
(commands, times and what each started from). The checkpoint's items are every member's items, and
every item of the --known corpora.
Beside it, as training writes them: NAME.metrics.json and NAME.loss.png (the members' curves).
Prints one line: the checkpoint, its parameters, its losses and the members' training time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import torch

from checkpoint_format import MODEL_NAME_RE
from training.corpus import CorpusError, is_conditioned, read_items, sha256_bytes
from training.data import Encoded, evaluate, excluded_held_out, split_items
from training.export import load_trained, save_checkpoint
from training.model import Ensemble, HierarchicalModel


def chain_time(training: dict[str, Any]) -> float:
    """Seconds of training behind a checkpoint: its own run and every run it started from."""
    return float(training.get("chain_wall_time_s", training["wall_time_s"]))


def build(
    paths: list[Path], corpus: Path, name: str, description: str = "", known: tuple[Path, ...] = ()
) -> tuple[Ensemble, dict[str, Any], list[str]]:
    """The ensemble of the checkpoints at `paths`, its meta.json and its items: the members' items
    and every item of the `known` corpora."""
    if not MODEL_NAME_RE.match(name):
        raise ValueError(f"--name must be a model name (a-z, 0-9, '-', '_'), got {name!r}")
    if len(paths) < 2:
        raise ValueError("an ensemble needs at least two members")
    if is_conditioned(corpus):
        raise ValueError("ensembles of conditioned models are not supported: pass a one-item-per-line corpus")
    items_in_corpus, corpus_sha = read_items(corpus)
    loaded = [load_trained(p) for p in paths]
    members: list[HierarchicalModel] = []
    for path, (model, meta, _) in zip(paths, loaded, strict=True):
        if not isinstance(model, HierarchicalModel):
            raise ValueError(f"{path} is an ensemble already: pass its members")
        if meta["corpus"]["sha256"] != corpus_sha:
            raise ValueError(f"{path} was trained on {meta['corpus']['file']}, not on {corpus}")
        members.append(model)
    first = loaded[0][1]
    settings = [m["training"]["settings"] for _, m, _ in loaded]
    split_of = {
        (s["seed"], s["val_fraction"], s["test_fraction"], tuple(s.get("exclude_held_out", ())))
        for s in settings
    }
    if len(split_of) != 1 or any(m["vocab"] != first["vocab"] for _, m, _ in loaded):
        raise ValueError(
            "members must share the vocabulary and the split (--seed, fractions and --exclude-held-out)"
        )
    seed, val_fraction, test_fraction, excluded = split_of.pop()
    ensemble = Ensemble(members).eval()

    stoi = {c: i for i, c in enumerate(first["vocab"])}
    # the split the members trained on: their training loss is measured on what they trained on
    held, train_only = excluded_held_out(corpus, excluded, val_fraction, test_fraction, seed)
    kept = [s for s in items_in_corpus if s not in held]
    split = split_items(kept, val_fraction, test_fraction, seed).without_in_training(train_only)
    ctx = ensemble.context_length
    metrics: dict[str, Any] = {
        part + "_loss": evaluate(ensemble, Encoded(getattr(split, part), stoi, ctx))
        for part in ("train", "val", "test")
    }
    metrics.update(
        unit=first["metrics"]["unit"],
        split={**first["metrics"]["split"]},
        members=[{k: m["metrics"][k] for k in ("train_loss", "val_loss", "test_loss")} for _, m, _ in loaded],
    )
    member_records = [
        {"checkpoint": p.name, "sha256": sha256_bytes(p.read_bytes()), "training": m["training"]}
        for p, (_, m, _) in zip(paths, loaded, strict=True)
    ]
    chains = [chain_time(m["training"]) for _, m, _ in loaded]
    extra = [s for path in known for s in read_items(path)[0]]
    items = list(dict.fromkeys([*(s for _, _, member_items in loaded for s in member_items), *extra]))
    meta: dict[str, Any] = {
        "name": name,
        "description": description or first["description"],
        "vocab": first["vocab"],
        "context_length": ctx,
        "architecture": {
            "type": "ensemble",
            "combine": "the mean of the members' next-character probabilities",
            "members": [m["architecture"] for _, m, _ in loaded],
        },
        "parameters": ensemble.num_parameters(),
        "metrics": metrics,
        "corpus": first["corpus"],
        "training": {
            "members": member_records,
            # each member's chain of runs, the pretraining included: the chains run side by side,
            # a core each (training/recipes), so the model takes as long as its longest one
            "member_chains_s": [round(t, 1) for t in chains],
            "wall_time_s": round(max(chains), 1),
            "chain_wall_time_s": round(max(chains), 1),
            "core_time_s": round(sum(chains), 1),
            "command": "python -m training ensemble "
            + " ".join(p.name for p in paths)
            + f" --corpus {corpus} --name {name}"
            + (f" --known {','.join(map(str, known))}" if known else ""),
            "threads": torch.get_num_threads(),
            "settings": {
                "members": len(paths),
                "seed": seed,
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
            },
        },
        "torch_version": torch.__version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return ensemble, meta, items


def write_report(meta: dict[str, Any], members: list[Path], out: Path) -> None:
    """NAME.metrics.json (the metadata but the vocabulary, as training writes it) and NAME.loss.png
    (each member's last stage: its training and validation loss, from the metrics JSON beside it)
    into `out`, beside the checkpoint."""
    name = meta["name"]
    report = {k: v for k, v in meta.items() if k != "vocab"}
    report["checkpoint"] = f"{name}.pt"
    tmp = out / f".{name}.metrics.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out / f"{name}.metrics.json")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for path in members:
        beside = path.with_suffix(".metrics.json")
        if not beside.is_file():
            continue
        history = json.loads(beside.read_text())["history"]
        steps = [h["step"] for h in history]
        line = ax.plot(steps, [h["val_loss"] for h in history], label=f"{path.stem}: validation")[0]
        ax.plot(
            steps,
            [h["train_loss"] for h in history],
            "--",
            color=line.get_color(),
            label=f"{path.stem}: train",
        )
    ax.axhline(meta["metrics"]["val_loss"], color="black", linewidth=1, label="ensemble: validation")
    ax.set_xlabel("step of the members' last stage")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(f"{name}: {meta['parameters']:,} parameters in {len(members)} members")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = out / f".{name}.loss.tmp.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    os.replace(png, out / f"{name}.loss.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training ensemble", description=__doc__.split("\n")[1])
    parser.add_argument("members", nargs="+", type=Path, metavar="CHECKPOINT", help="a member (.pt)")
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus the members were trained on")
    parser.add_argument("--name", required=True, help="model name; the checkpoint is OUT/NAME.pt")
    parser.add_argument("--out", type=Path, default=Path("models"), help="output folder (default: models)")
    parser.add_argument("--description", default="", help="for /models (default: the first member's)")
    parser.add_argument(
        "--known", type=lambda t: tuple(Path(p) for p in t.split(",") if p), default=(), metavar="CORPUS,...",
        help="corpora whose items count as known too (items.txt: what novel leaves out and in_corpus "
        "reports), e.g. every year's names, whose held-out part no member was trained on",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        ensemble, meta, items = build(args.members, args.corpus, args.name, args.description, args.known)
        path = save_checkpoint(ensemble, meta, items, args.out / f"{args.name}.pt")
        write_report(meta, args.members, args.out)
    except (CorpusError, ValueError, OSError) as e:
        print(f"error: {e}")
        return 2
    m = meta["metrics"]
    tests = " ".join(f"{x['test_loss']:.4f}" for x in m["members"])
    t = meta["training"]
    print(
        f"{path}: {meta['parameters']:,} parameters in {len(args.members)} members, loss train "
        f"{m['train_loss']:.4f} val {m['val_loss']:.4f} test {m['test_loss']:.4f} nats/char (members' test "
        f"{tests}); training {t['wall_time_s'] / 60:.1f} min side by side ({t['core_time_s'] / 60:.1f} "
        "core-minutes)"
    )
    return 0

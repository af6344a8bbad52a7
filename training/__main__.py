"""
namegen's training command line.

    python -m training corpus [--out resources]
    python -m training wordlists             # the safe filter's lists from npm packages
    python -m training train --corpus resources/names.txt --name names --out models
    python -m training train --help          # every hyperparameter is a flag
    python -m training train --corpus resources/names-era.tsv.gz --name names-era --out models
    python -m training export models/*.pt    # rewrite checkpoints with this version's exporter
    python -m training evaluate models/names-era.pt --baseline runs/names-era-uncond.pt
    python -m training score models/names.pt --corpus resources/names.txt   # test loss, any checkpoint
    python -m training sexes --female models/names-female.pt --male models/names-male.pt \
        --era models/names-era.pt                # other-sex share, neutral names
    python -m training ensemble a.pt b.pt --corpus resources/names.txt --name names --out models
    python -m training world models/names-world.pt --single runs/world-single   # per-country table

Bad input (a missing or tiny corpus, a bad flag value) prints one line `error: ...` and exits 2,
with nothing written to the output folder.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from training import ensemble, evaluate, score, sexes, wordlists, world
from training.config import TrainConfig
from training.corpus import CorpusError, build_corpora
from training.export import reexport
from training.train import run


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return sizes


def _paths(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.split(",") if p)


def _codes(text: str) -> tuple[str, ...]:
    return tuple(c.strip().upper() for c in text.split(",") if c.strip())


HELP = {
    "corpus": "one-item-per-line text file to train on",
    "name": "model name; the checkpoint is written to OUT/NAME.pt",
    "out": "output folder for NAME.pt, NAME.metrics.json and NAME.loss.png",
    "description": "model description for /models (default: from resources/corpora.json)",
    "n_embd": "character embedding size",
    "hidden": "comma-separated width of each fusion level; context = 2**levels",
    "dropout": "dropout after each level during training",
    "steps": "optimisation steps",
    "batch_size": "items per step",
    "lr": "peak learning rate (AdamW), reached after warm-up",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_steps": "linear warm-up steps",
    "weight_decay": "AdamW weight decay on weight matrices",
    "grad_clip": "gradient norm clip",
    "eval_interval": "steps between validation passes; the best weights are kept",
    "val_fraction": "fraction of items held out for validation",
    "test_fraction": "fraction of items held out for the final test",
    "seed": "seed for the split, and for initialisation, batches and dropout unless --train-seed is set",
    "train_seed": "seed for initialisation, batches and dropout (-1: --seed); the split stays --seed's",
    "threads": "torch intra-op threads (0 = torch default)",
    "progress": "show a progress bar (--no-progress to hide it)",
    "conditions": "conditioned corpora: the factors the model is given (names-era: sex, decade; "
    "names-world: sex, country), or 'none'",
    "conditioning": "conditioned corpora: 'tokens' (condition tokens in the padding; exported) or "
    "'global' (a vector added at every level; metrics only)",
    "condition_dropout": "conditioned corpora: how often each factor is left out of an item's condition",
    "weighting": "conditioned corpora: draw items alike (none), by log (1 + ln births), sqrt or births, "
    "by share (births within the item's sex and decade), or share-sqrt (births within it, and each sex "
    "and decade by the square root of its births)",
    "init": "a checkpoint to start from (fine-tuning); same architecture",
    "countries": "names-world only: train on these countries' names alone (comma-separated ISO codes); "
    "the split stays the whole corpus's, so the held-out names are the shared model's",
    "exclude_held_out": "comma-separated corpora whose own validation and test items (same seed and "
    "fractions) are left out of this corpus; if this corpus is among them, out of its training part only",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[1])
    sub = parser.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("corpus", help="build the corpora in resources/ from their packages")
    corpus.add_argument("--out", default="resources", help="output folder (default: resources)")

    export = sub.add_parser(
        "export",
        help="re-export trained checkpoints with this version's TorchScript methods, keeping their "
        "weights, metadata and items",
    )
    export.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT", help="a .pt file")
    export.add_argument(
        "--out", type=Path, default=None, help="output folder (default: rewrite each file in place)"
    )

    sub.add_parser(
        "evaluate", add_help=False, help="period fit of a conditioned model (python -m training evaluate -h)"
    )
    sub.add_parser(
        "sexes",
        add_help=False,
        help="other-sex share of the sex models against a Markov chain, and neutral names' shares "
        "(python -m training sexes -h)",
    )
    sub.add_parser(
        "world",
        add_help=False,
        help="per-country test loss against one-country models and Markov chains, and country fit, of a "
        "model conditioned on country (python -m training world -h)",
    )
    sub.add_parser(
        "score",
        add_help=False,
        help="test loss of a checkpoint on a corpus's test split (python -m training score -h)",
    )
    sub.add_parser(
        "ensemble",
        add_help=False,
        help="put trained checkpoints together as one, averaging their probabilities (python -m training "
        "ensemble -h)",
    )
    train = sub.add_parser("train", help="train a model and export its checkpoint")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "progress":
            train.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=HELP[f.name]
            )
        elif f.name == "exclude_held_out":
            train.add_argument(flag, type=_paths, default=default, metavar="CORPUS,...", help=HELP[f.name])
        elif f.name == "countries":
            train.add_argument(flag, type=_codes, default=default, metavar="CC,...", help=HELP[f.name])
        elif f.name == "hidden":
            train.add_argument(
                flag,
                type=_sizes,
                default=default,
                metavar="H1,H2,...",
                help=f"{HELP[f.name]} (default: {','.join(map(str, default))})",
            )
        else:
            train.add_argument(
                flag, type=type(default), default=default, help=f"{HELP[f.name]} (default: {default!r})"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        return evaluate.main(argv[1:])
    if argv[:1] == ["score"]:
        return score.main(argv[1:])
    if argv[:1] == ["sexes"]:
        return sexes.main(argv[1:])
    if argv[:1] == ["ensemble"]:
        return ensemble.main(argv[1:])
    if argv[:1] == ["world"]:
        return world.main(argv[1:])
    if argv[:1] == ["wordlists"]:
        for path in wordlists.build():
            print(f"{path}: written")
        return 0
    args = build_parser().parse_args(argv)
    try:
        if args.command == "corpus":
            prov = build_corpora(Path(args.out))
            for entry in prov.values():
                print(f"{args.out}/{entry['file']}: {entry['items']} items, sha256 {entry['sha256']}")
            return 0
        if args.command == "export":
            for path in args.checkpoints:
                written = reexport(path, path if args.out is None else args.out / path.name)
                print(f"{written}: re-exported from {path}")
            return 0
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
        meta = run(cfg)
    except (CorpusError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = meta["metrics"]
    print(
        f"{cfg.out}/{cfg.name}.pt: {meta['parameters']:,} parameters, context {meta['context_length']}, "
        f"loss train {m['train_loss']:.4f} val {m['val_loss']:.4f} test {m['test_loss']:.4f} nats/char, "
        f"{meta['training']['wall_time_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

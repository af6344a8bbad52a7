"""
A training run's settings: `python -m training train`'s flags (kebab-case there, snake_case here),
checked by `validate` before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkpoint_format import MODEL_NAME_RE
from training.conditions import ConditionSpace
from training.countries import CODES
from training.data import WEIGHTINGS
from training.model import ModelConfig


@dataclass
class TrainConfig:
    corpus: str = "resources/names.txt"
    name: str = "names"  # model name: the checkpoint is <out>/<name>.pt
    out: str = "models"
    description: str = ""  # defaults to the corpus provenance description
    # model
    n_embd: int = 24
    hidden: tuple[int, ...] = (160, 160, 160, 160)
    dropout: float = 0.1
    # optimisation
    steps: int = 12000
    batch_size: int = 128
    lr: float = 3e-3  # peak learning rate, after linear warm-up
    min_lr: float = 3e-4  # cosine decay ends here
    warmup_steps: int = 200
    weight_decay: float = 0.1  # AdamW, on weight matrices only
    grad_clip: float = 1.0
    # evaluation and split
    eval_interval: int = 250  # steps between validation passes (and best-weights checks)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 1337  # the split (and, unless train_seed is set, initialisation, batches, dropout)
    # initialisation, batches and dropout; -1: the same as seed. Members of an ensemble differ by
    # this alone, so they share the split (and the names held out of pretraining)
    train_seed: int = -1
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True  # tqdm bar on stderr
    # conditioned corpora (*.tsv.gz) only
    conditions: str = "sex,decade"  # the factors the model is given, or "none" (same items, no condition)
    conditioning: str = "tokens"  # "tokens" (exported) or "global" (compared in training only)
    condition_dropout: float = 0.1  # each factor is left out of an item's condition this often
    weighting: str = "none"  # how items are drawn ("none": alike; see WEIGHTINGS)
    # names-world only: train on these countries' items alone. The split stays the whole corpus's
    # (by name), so a one-country model is tested on the same held-out names as the shared one
    countries: tuple[str, ...] = ()
    # fine-tuning and pretraining
    init: str = ""  # checkpoint to start from (same architecture and vocabulary)
    exclude_held_out: tuple[str, ...] = ()  # corpora whose own val/test items are left out of this one

    def validate(self) -> None:
        if not MODEL_NAME_RE.match(self.name):
            raise ValueError(
                f"--name must be 1-64 characters of a-z, 0-9, '-' or '_' starting with a letter "
                f"or digit, got {self.name!r}"
            )
        for flag, value in [
            ("--steps", self.steps),
            ("--batch-size", self.batch_size),
            ("--eval-interval", self.eval_interval),
        ]:
            if value < 1:
                raise ValueError(f"{flag} must be a positive integer, got {value}")
        if self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0, got {self.threads}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need --lr > 0 and 0 <= --min-lr <= --lr, got {self.lr}, {self.min_lr}")
        if self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError("--weight-decay must be >= 0 and --grad-clip > 0")
        for flag, f in [("--val-fraction", self.val_fraction), ("--test-fraction", self.test_fraction)]:
            if not 0 < f < 1:
                raise ValueError(f"{flag} must be between 0 and 1 (exclusive), got {f}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"--val-fraction + --test-fraction must leave a training part, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"--weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0 <= self.condition_dropout < 1:
            raise ValueError(f"--condition-dropout must be in [0, 1), got {self.condition_dropout}")
        if self.conditions != "none":
            ConditionSpace.build(self.conditions.split(","))
        unknown = [c for c in self.countries if c not in CODES]
        if unknown or len(set(self.countries)) != len(self.countries):
            raise ValueError(
                f"--countries must be distinct codes of {', '.join(CODES)}, got {','.join(self.countries)!r}"
            )
        self.model_config(2, 0).validate()

    @property
    def init_seed(self) -> int:
        """The seed of the initial weights, the batches and dropout."""
        return self.seed if self.train_seed < 0 else self.train_seed

    def model_config(self, vocab_size: int, n_conditions: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, n_embd=self.n_embd, hidden=tuple(self.hidden), dropout=self.dropout,
            n_conditions=n_conditions, conditioning=self.conditioning,
        )  # fmt: skip

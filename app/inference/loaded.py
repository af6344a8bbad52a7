"""
A checkpoint as the service holds it once loaded and checked (app/inference/checkpoint.py builds
it): its vocabulary, training items, conditions, the scripted module and its batch loop. Plain data
and small lookups; nothing here reads a file.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from app.inference.items import ItemSet
from checkpoint_format import BOUNDARY

NEUTRAL_SEX = "neutral"  # the sex value that asks for both sexes' conditions at once


@dataclass(frozen=True)
class ConditionField:
    """A request field that conditions a model: `sex` (one of `values`, or with two of them,
    "neutral": both at once), `country` (one of `values`, any case) or `year` (min..max, mapped onto
    a factor value, its bucket: 1925 -> 1920)."""

    name: str
    factor: str
    values: tuple[str, ...] = ()
    min: int = 0
    max: int = 0
    bucket: int = 1

    def factor_value(self, value: str | int) -> str | int | None:
        """The factor value for a request value, or None when the value is not allowed."""
        if self.values:
            text = str(value).upper()
            return text if text in self.values else None
        if isinstance(value, bool) or not isinstance(value, int) or not self.min <= value <= self.max:
            return None
        return self.min + (value - self.min) // self.bucket * self.bucket

    def pair_of(self, value: str | int) -> tuple[str, str] | None:
        """For `sex` "neutral" (any case) on a field of two sexes: the two, whose conditions the
        model combines at every step (app/inference/engine.py, Start.twin); otherwise None."""
        if self.name == "sex" and len(self.values) == 2 and str(value).lower() == NEUTRAL_SEX:
            return self.values[0], self.values[1]
        return None

    def allowed(self) -> str:
        if not self.values:
            return f"a year from {self.min} to {self.max}"
        if self.pair_of(NEUTRAL_SEX):
            return f"{', '.join(self.values)} or {NEUTRAL_SEX}"
        if len(self.values) > 2:  # country: the codes the model was trained on
            return f"one of {', '.join(self.values)}"
        return " or ".join(self.values)

    def factor_values(self) -> list[str | int]:
        """Every factor value a request can reach through this field."""
        if self.values:
            return list(self.values)
        return list(range(self.min, self.max + 1, self.bucket))


@dataclass(frozen=True)
class Conditions:
    """What a conditioned checkpoint's meta.json declares: the request fields, and the start
    token of every combination of factor values (a factor left out: None)."""

    fields: dict[str, ConditionField]
    factors: tuple[str, ...]
    tokens: dict[tuple[Any, ...], int]  # factor values (None: left out) -> token id

    @classmethod
    def parse(cls, raw: object) -> Conditions:
        """From meta.json's "conditions"; ValueError saying what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("must be an object")
        factors = tuple(raw["factors"])
        fields = {}
        for name, spec in raw["fields"].items():
            if spec["factor"] not in factors:
                raise ValueError(f"field {name!r} maps onto unknown factor {spec['factor']!r}")
            fields[name] = ConditionField(
                name, spec["factor"], tuple(spec.get("values", ())), int(spec.get("min", 0)),
                int(spec.get("max", 0)), int(spec.get("bucket", 1)),
            )  # fmt: skip
        for f in fields.values():
            if not f.values and (f.bucket < 1 or f.min > f.max):
                raise ValueError(
                    f"field {f.name!r} needs bucket >= 1 and min <= max, got {f.bucket}, {f.min}..{f.max}"
                )
        tokens = {tuple(t.get(f) for f in factors): int(t["token"]) for t in raw["tokens"]}
        if not tokens or len(set(tokens.values())) != len(tokens):
            raise ValueError("tokens must be distinct")
        # every condition a request can ask for, each factor given or left out, has a token (all
        # of them left out is no condition: the boundary)
        reachable: dict[str, list[Any]] = {factor: [None] for factor in factors}
        for f in fields.values():
            reachable[f.factor] += f.factor_values()
        for combination in itertools.product(*reachable.values()):
            if combination not in tokens and any(v is not None for v in combination):
                shown = ", ".join(f"{k}={v}" for k, v in zip(factors, combination, strict=True))
                raise ValueError(f"no token for the condition {shown}, which requests can ask for")
        return cls(fields, factors, tokens)


@dataclass(frozen=True)
class Integrity:
    """How a checkpoint's bytes were checked at load."""

    crc32: bool  # every zip entry's CRC-32 (always, when loaded)
    digests: bool  # every entry against digests.json (format 2 checkpoints)
    manifest: bool  # the whole file against SHA256SUMS beside it (when the folder has one)


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint as loaded and checked: plain data, built by load_checkpoint."""

    name: str
    path: Path
    meta: dict[str, Any]
    vocab: list[str]
    stoi: dict[str, int]
    alphabet: str  # every character a prefix or name may use
    labels: list[str]  # each token as next-char reports it: the boundary as END_LABEL
    items: ItemSet  # the training items (app/inference/items.py)
    sha256: str
    size_bytes: int
    load_seconds: float
    incremental: bool  # exports init_state/step (Fast WaveNet) rather than only forward
    integrity: Integrity
    conditions: Conditions | None
    # start tokens of the batch loop's begin table: [boundary, then each condition's token]
    starts: list[int] = field(repr=False)
    module: torch.jit.ScriptModule = field(repr=False)
    # the scripted loop that runs a whole batch through the checkpoint's step (app/inference/engine.py)
    loop: torch.jit.ScriptModule = field(repr=False)

    @property
    def context_length(self) -> int:
        return int(self.meta["context_length"])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(map(self.vocab.__getitem__, ids))  # a third faster than a generator

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of `text` outside this model's alphabet, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.stoi or c == BOUNDARY))

    @cached_property
    def neutral(self) -> frozenset[str]:
        """The model's real names that are gender-neutral by the rule its meta.json names (empty when
        it names none). Made once: neutral sampling asks it of every name it draws."""
        return frozenset(self.meta.get("neutral", {}).get("names", ()))

    @cached_property
    def scripts(self) -> dict[str, str] | None:
        """Each letter of the vocabulary with its script (LATIN, CYRILLIC, HEBREW: the first word of
        its Unicode name), when the letters are of more than one script; None when of one. A real
        name keeps to one script (the corpora refuse the others), so a sampled name that mixes two
        is the model's slip, which sampling rejects."""
        letters = {c: unicodedata.name(c, "?").split(" ")[0] for c in self.vocab[1:] if c.isalpha()}
        return letters if len(set(letters.values())) > 1 else None

    def mixes_scripts(self, name: str) -> bool:
        scripts = self.scripts
        return scripts is not None and len({scripts[c] for c in name if c in scripts}) > 1

    @cached_property
    def separators(self) -> frozenset[str]:
        """The characters of the vocabulary that are neither letters nor marks (space, hyphen,
        apostrophe in names-world; none in the US models)."""
        return frozenset(c for c in self.vocab[1:] if unicodedata.category(c)[0] not in "LM")

    def misshapen(self, name: str) -> bool:
        """Whether a name breaks the shape every name of the corpora has (their normaliser refuses
        the others): it begins with a letter, and ends with a letter or an apostrophe (the Hebrew
        geresh, as in ג'). A sampled name that does not is the model's slip."""
        seps = self.separators
        return bool(seps) and (not name or name[0] in seps or (name[-1] in seps and name[-1] != "'"))

    def start_of(self, values: dict[str, Any]) -> int:
        """The begin-table row of a condition given as factor values (absent ones left out);
        0, the boundary, when nothing is given."""
        if self.conditions is None or not any(v is not None for v in values.values()):
            return 0
        token = self.conditions.tokens[tuple(values.get(f) for f in self.conditions.factors)]
        return self.starts.index(token)

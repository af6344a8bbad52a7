"""Every check of a request that needs the running service (its models and settings), in one place.

What a field may hold by itself (types, ranges, lengths) is declared on the request models
(app/http/schemas.py) and checked by Pydantic; what depends on the model asked for or on the
operator's settings is checked here. Each check raises FieldError(field, message, value), which
app/http/errors.py answers as a 422 in FastAPI's own shape, its `loc` ["query" or "body", field];
an unknown model is a 404 naming the loaded ones.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from fastapi import HTTPException

from app.config import DEFAULT_MAX_LENGTH, Settings
from app.http.errors import MAX_SHOWN_NAME, FieldError
from app.http.schemas import ConditionFields, GenerateRequest
from app.inference.engine import NO_CONDITION, Sampling, Start
from app.inference.loaded import NEUTRAL_SEX, LoadedModel
from app.inference.registry import Registry
from app.inference.sampling import NEUTRAL_GAP, SampleSpec

DEFAULT_FAMILY_MODEL = "surnames"  # full names' family part, when the request names no model


@dataclass(frozen=True)
class GeneratePlan:
    """A /generate request, checked: what each part samples from, and how."""

    model: LoadedModel
    spec: SampleSpec
    condition: dict[str, str | int] | None  # as the model's factors, for the response; None: none
    family_model: LoadedModel | None = None  # full names: the family part's model and spec
    family_spec: SampleSpec | None = None


def generate_plan(req: GenerateRequest, registry: Registry, settings: Settings) -> GeneratePlan:
    """Every check of a /generate request, in the order a client reads the errors: the model, n,
    the prefix, the condition, the lengths; then, for full names, the family part's model, prefix
    and lengths, and otherwise that no family field is set."""
    model = model_of(registry, req.model)
    check_n(req.n, settings)
    prefix = prefix_of(model, req.prefix, settings)
    start, condition = condition_of(registry, model, req)
    spec = sample_spec_of(req, settings, prefix, start, share=2 if req.full else 1)
    if not req.full:
        check_full_only(req)
        return GeneratePlan(model, spec, condition)
    family_model = family_model_of(registry, req.family_model or DEFAULT_FAMILY_MODEL)
    family_prefix = prefix_of(family_model, req.family_prefix, settings, field="family_prefix")
    family_spec = sample_spec_of(
        req, settings, family_prefix, NO_CONDITION, prefix_field="family_prefix", share=2
    )
    return GeneratePlan(model, spec, condition, family_model, family_spec)


def model_of(registry: Registry, name: str | None) -> LoadedModel:
    """The loaded model called `name` (the default when None); 404 naming the models there are.
    Names are only ever looked up in the registry, never turned into paths."""
    model = registry.models.get(registry.default if name is None else name)
    if model is None:
        shown = name if name is None or len(name) <= MAX_SHOWN_NAME else f"{name[:MAX_SHOWN_NAME]}..."
        available = ", ".join(registry.names())
        raise HTTPException(404, f"model {shown!r} not found; available models: {available}")
    return model


def family_model_of(registry: Registry, name: str) -> LoadedModel:
    """full names' family model: a 422 naming `family_model` and the loaded models if it is not one."""
    model = registry.models.get(name)
    if model is None:
        available = ", ".join(registry.names())
        msg = f"family_model {name!r} is not loaded; available models: {available}"
        raise FieldError("family_model", msg, name)
    return model


def check_n(n: int, settings: Settings) -> None:
    if n > settings.max_n:
        raise FieldError("n", f"n must be between 1 and {settings.max_n}, got {n}", n)


def check_score_names(names: list[str], settings: Settings) -> None:
    if len(names) > settings.max_score_names:
        msg = f"names may hold at most {settings.max_score_names} items, got {len(names)}"
        raise FieldError("names", msg, len(names))


def check_full_only(req: GenerateRequest) -> None:
    """The fields that apply to full names only are left out of a request for plain names."""
    for name in ("family_model", "family_prefix"):
        if value := getattr(req, name):
            raise FieldError(name, f"{name} applies to full names only: add full=true", value)


def prefix_of(model: LoadedModel, prefix: str, settings: Settings, field: str = "prefix") -> str:
    """The prefix as the model reads it (text_of), or a 422 naming `field` if it is too long."""
    if len(prefix) > settings.max_prefix_length:
        msg = f"{field} may have at most {settings.max_prefix_length} characters, got {len(prefix)}"
        raise FieldError(field, msg, prefix)
    return text_of(model, prefix, field)


def text_of(model: LoadedModel, text: str, field: str) -> str:
    """`text` normalised once (NFC) and then lowercased, or a 422 listing the characters of the
    normalised text that are outside the model's alphabet. A character passes when it, or its
    lowercase, is a letter of the alphabet; one whose lowercase is longer (İ: i and a combining
    dot) does not pass as part of it. So what is checked is what the model reads, and the error
    names the characters as the client wrote them (after NFC)."""
    normalised = unicodedata.normalize("NFC", text)
    lowered = normalised.lower()
    if len(lowered) == len(normalised) and not model.unknown_chars(lowered):
        return lowered
    bad = list(dict.fromkeys(c for c in normalised if model.unknown_chars(c.lower()) or len(c.lower()) != 1))
    raise FieldError(
        field,
        f"{field} has characters outside the alphabet of model {model.name!r}: "
        f"{''.join(bad)!r}; allowed (any case): {model.alphabet!r}",
        text,
    )


def condition_of(
    registry: Registry, model: LoadedModel, req: ConditionFields
) -> tuple[Start, dict[str, str | int] | None]:
    """The begin-table rows for the request's condition fields (with sex "neutral", one per sex),
    and the condition as the model's factors, for the response; a 422 naming the field for a
    condition the model does not take or a value outside what it allows."""
    given = req.condition_values()
    if not given:
        return NO_CONDITION, None
    conditions = model.conditions
    factors: dict[str, str | int] = {}
    pair: tuple[str, tuple[str, str]] | None = None  # a factor asked for as both of its values
    for name, value in given.items():
        cf = conditions.fields.get(name) if conditions is not None else None
        if cf is None:
            takers = [
                m.name for m in registry.models.values() if m.conditions and name in m.conditions.fields
            ]
            which = (
                f"models that take it: {', '.join(sorted(takers))}" if takers else "no loaded model takes it"
            )
            raise FieldError(name, f"model {model.name!r} takes no {name} condition; {which}", value)
        if (both := cf.pair_of(value)) is not None:
            pair, factors[cf.factor] = (cf.factor, both), NEUTRAL_SEX
            continue
        factor_value = cf.factor_value(value)
        if factor_value is None:
            msg = f"{name} must be {cf.allowed()} for model {model.name!r}, got {value!r}"
            raise FieldError(name, msg, value)
        factors[cf.factor] = factor_value
    if pair is None:
        return Start(model.start_of(factors)), factors
    factor, (one, other) = pair
    return Start(
        model.start_of({**factors, factor: one}), model.start_of({**factors, factor: other})
    ), factors


def sample_spec_of(
    req: GenerateRequest,
    settings: Settings,
    prefix: str,
    start: Start,
    prefix_field: str = "prefix",
    share: int = 1,
) -> SampleSpec:
    """The request's sampling settings for one model, with the lengths checked against `prefix` (the
    request's `prefix_field`); with `share` parts (full names: 2), each part gets that share of the
    request's one budget of sequences and steps. A pair of conditions (sex neutral) computes each
    row twice, so its budgets count each sequence and step twice."""
    share *= 2 if start.twin >= 0 else 1
    max_length = req.max_length if req.max_length is not None else max(DEFAULT_MAX_LENGTH, len(prefix))
    min_length = req.min_length if req.min_length is not None else 1
    if len(prefix) > max_length:
        msg = f"max_length ({max_length}) is shorter than the {prefix_field} ({len(prefix)} characters)"
        raise FieldError("max_length", msg, req.max_length)
    if min_length > max_length:
        msg = f"min_length ({min_length}) must not be greater than max_length ({max_length})"
        raise FieldError("min_length", msg, req.min_length)
    sampling = Sampling(
        temperature=req.temperature,
        top_k=req.top_k or 0,
        top_p=req.top_p or 1.0,
        min_length=min_length,
        max_length=max_length,
    )
    return SampleSpec(
        n=req.n,
        sampling=sampling,
        prefix=prefix,
        unique=req.unique,
        novel=req.novel,
        max_rounds=settings.max_rounds,
        max_batch=settings.max_round_rows,
        max_sequences=settings.max_sequences // share,
        max_steps=settings.max_steps // share,
        start=start,
        max_gap=NEUTRAL_GAP if start.twin >= 0 else None,
    )

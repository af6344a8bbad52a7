"""Request and response bodies of the HTTP API (Pydantic v2). Field names are part of the contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.config import LENGTH_CEILING, N_CEILING, PREFIX_CEILING

ModelName = Field(
    None,
    min_length=1,
    max_length=64,
    description="model to use (see GET /models); default: the service's default model",
    examples=["names"],
)


Sex = Field(
    None,
    min_length=1,
    max_length=8,
    description="condition: F or M, for models that take it (GET /models lists each model's "
    "conditions); left out, the model's names of either sex",
    examples=["F"],
)
Year = Field(
    None,
    ge=0,
    le=9999,
    description="condition: a year of birth (names-era: 1880-2017, used as its decade), for models "
    "that take it; left out, the model's names of any year",
    examples=[1925],
)


def _check_lengths(min_length: int | None, max_length: int | None) -> None:
    if min_length is not None and max_length is not None and min_length > max_length:
        raise ValueError(f"min_length ({min_length}) must not be greater than max_length ({max_length})")


class RequestModel(BaseModel):
    """A request body: unknown fields refused, and JSON types taken as they are (strict): `true`
    is no n, `1` no boolean, `"5"` no number. The GET routes read their query strings into the same
    models in lax mode (app/http/deps.py parse_query), where every value arrives as text."""

    model_config = ConfigDict(extra="forbid", strict=True)


class GenerateRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "names", "n": 5, "seed": 7},
                {"model": "surnames", "n": 3, "prefix": "mc", "temperature": 0.8, "seed": 1},
                {"n": 10, "novel": True, "top_p": 0.9, "min_length": 4, "max_length": 8},
                {"model": "names-era", "n": 5, "sex": "F", "year": 1925, "seed": 1},
                {"model": "names-female", "n": 3, "full": True, "seed": 4},
            ]
        },
    )

    model: str | None = ModelName
    n: int = Field(10, ge=1, le=N_CEILING, description="how many names (the service's limit: GET /models)")
    temperature: float = Field(
        1.0, ge=0.01, le=5, description="softmax temperature, 0.01 to 5; below 1 is safer"
    )
    top_k: int | None = Field(None, ge=1, le=1000, description="sample only from the k likeliest characters")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling: smallest set with this mass")
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="random seed; the one used is echoed back to reproduce"
    )
    prefix: str = Field("", max_length=PREFIX_CEILING, description="every name starts with this (any case)")
    min_length: int | None = Field(
        None, ge=1, le=LENGTH_CEILING, description="shortest name, prefix included"
    )
    max_length: int | None = Field(None, ge=1, le=LENGTH_CEILING, description="longest name, prefix included")
    unique: bool = Field(True, description="no name twice in one response")
    novel: bool = Field(
        False,
        description="only names that are not in the model's training items (GET /models: each model's "
        "items, and what novel means for it); with full, neither part is",
    )
    safe: bool = Field(
        True,
        description="leave out names that are or contain an obscenity or a slur, and full names that read "
        "as one (real names that merely contain such a word are kept); false: no such check, unless "
        "the service forces it (the response's safe says)",
    )
    lowercase: bool = Field(False, description="return names in lowercase instead of capitalized")
    sex: str | None = Sex
    year: int | None = Year
    full: bool = Field(
        False,
        description="full names: a given name from `model` and a family name from `family_model`, each "
        "sampled with the same settings (prefix, lengths, unique and novel apply to each part)",
    )
    family_model: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="with full: the model of the family names (default: surnames)",
        examples=["surnames"],
    )
    family_prefix: str = Field(
        "", max_length=PREFIX_CEILING, description="with full: every family name starts with this (any case)"
    )

    @model_validator(mode="after")
    def lengths_in_order(self) -> GenerateRequest:
        _check_lengths(self.min_length, self.max_length)
        return self


class FullName(BaseModel):
    name: str = Field(description="the given and family name, joined by a space")
    given: str = Field(description="the given name, from the request's model")
    family: str = Field(description="the family name, from family_model")


class GenerateResponse(BaseModel):
    model: str = Field(description="the model that generated the names")
    names: list[str] = Field(description="the names, at most n, capitalized unless lowercase was asked")
    seed: int = Field(description="the seed used: send it back with the same fields to get the same names")
    count: int = Field(description="how many names were returned")
    requested: int = Field(description="how many were asked for (n)")
    complete: bool = Field(description="false when the constraints left fewer than n names")
    rounds: int = Field(description="sampling batches used")
    sampled: int = Field(description="sequences sampled in all batches")
    rejected: dict[str, int] = Field(
        description="samples dropped, by reason: too_long, duplicate, in_corpus, unsafe; missing = n - count "
        "(with full: both parts' together)"
    )
    note: str | None = Field(None, description="why fewer than n names came back, if they did")
    stopped: str | None = Field(
        None,
        description="what ended the request short of n names: rounds (NAMEGEN_MAX_ROUNDS), "
        "sequences (NAMEGEN_MAX_SEQUENCES) or deadline (NAMEGEN_GENERATE_TIMEOUT_S); null: complete",
    )
    condition: dict[str, str | int] | None = Field(
        None, description="the condition used, as the model's factors (sex, decade); null: none"
    )
    family_model: str | None = Field(None, description="with full: the model of the family names")
    full_names: list[FullName] | None = Field(
        None, description="with full: each name's parts, in the order of names; null: not asked"
    )
    safe: bool = Field(
        True,
        description="whether the safe filter was applied: the request's safe, or always where the "
        "service forces it (NAMEGEN_FORCE_SAFE)",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "names",
                    "names": ["Kaylee", "Jaxon"],
                    "seed": 7,
                    "count": 2,
                    "requested": 2,
                    "complete": True,
                    "rounds": 1,
                    "sampled": 2,
                    "rejected": {},
                    "note": None,
                    "stopped": None,
                    "condition": None,
                }
            ]
        }
    )


class NextCharRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "names", "prefix": "emm"},
                {"model": "names-era", "prefix": "mil", "sex": "F", "year": 1925, "top_k": 5},
            ]
        },
    )

    model: str | None = ModelName
    prefix: str = Field("", max_length=PREFIX_CEILING, description="text so far (may be empty; any case)")
    # below 0.01 the scaled logits can overflow float32 and the distribution turns to NaN
    temperature: float = Field(1.0, ge=0.01, le=5, description="softmax temperature, 0.01 to 5")
    top_k: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="list only the k likeliest characters (and any tied with the k-th), renormalised; "
        "without it, every character is listed",
    )
    sex: str | None = Sex
    year: int | None = Year


class CharProb(BaseModel):
    char: str = Field(description='a character, or "<end>" for the end of the name')
    prob: float = Field(ge=0, le=1, description="its probability")


class NextCharResponse(BaseModel):
    model: str = Field(description="the model used")
    prefix: str = Field(description="the prefix, lowercased")
    condition: dict[str, str | int] | None = Field(
        None, description="the condition used, as the model's factors (sex, decade); null: none"
    )
    distribution: list[CharProb] = Field(
        description="every next character (with top_k: the kept ones), likeliest first; sums to 1"
    )


class ScoreRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "names", "names": ["emma", "xqzv"]},
                {"model": "names-era", "names": ["mildred", "jayden"], "sex": "F", "year": 1925},
            ]
        },
    )

    model: str | None = ModelName
    names: list[str] = Field(
        min_length=1,
        max_length=N_CEILING,
        description=f"names to score (any case, 1-{LENGTH_CEILING} characters each)",
    )
    sex: str | None = Sex
    year: int | None = Year

    @model_validator(mode="after")
    def names_have_sane_lengths(self) -> ScoreRequest:
        for i, name in enumerate(self.names):
            if not 1 <= len(name) <= LENGTH_CEILING:
                raise ValueError(f"names[{i}] must have 1 to {LENGTH_CEILING} characters, got {len(name)}")
        return self


class NameScore(BaseModel):
    name: str = Field(description="the name, lowercased")
    logprob: float = Field(description="natural log-probability of the name and its end")
    nats_per_char: float = Field(description="-logprob / (characters + 1): lower is more name-like")
    perplexity: float = Field(description="exp(nats_per_char)")
    in_corpus: bool = Field(description="whether the name is in the model's training corpus")


class ScoreResponse(BaseModel):
    model: str = Field(description="the model used")
    condition: dict[str, str | int] | None = Field(
        None, description="the condition used, as the model's factors (sex, decade); null: none"
    )
    scores: list[NameScore] = Field(description="one score per name, in the order sent")


class ModelMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    train_loss: float = Field(description="nats per character on the training split")
    val_loss: float = Field(description="nats per character on the validation split")
    test_loss: float = Field(description="nats per character on the held-out test split")


class CorpusInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description="the corpus's name")
    source: str = Field(description="where the data comes from")
    licence: str = Field(description="the data's and the package's licences")
    items: int = Field(description="items (lines) in the corpus")
    sha256: str = Field(description="sha256 of the corpus file (uncompressed)")


class IntegrityInfo(BaseModel):
    crc32: bool = Field(description="every entry of the archive matched its CRC-32")
    digests: bool = Field(description="every entry matched its sha256 in the archive's digests.json")
    manifest: bool = Field(description="the whole file matched its sha256 in SHA256SUMS beside it")


class ModelInfo(BaseModel):
    name: str = Field(description="the model's name: what requests pass as model")
    description: str = Field(description="what the model generates")
    default: bool = Field(description="whether requests without a model use this one")
    vocab: list[str] = Field(description='index 0 is the boundary "."')
    alphabet: str = Field(description="the characters a prefix or a scored name may use")
    context_length: int = Field(description="characters the model sees before each prediction")
    parameters: int = Field(description="trainable parameters")
    architecture: dict[str, Any] = Field(description="embedding size, width and dilation of each level, ...")
    metrics: ModelMetrics = Field(description="loss on the training, validation and test splits")
    corpus: CorpusInfo = Field(description="the data the model was trained on")
    created_at: str = Field(description="when the checkpoint was made (ISO 8601, UTC)")
    torch_version: str | None = Field(None, description="the torch version that made it")
    sha256: str = Field(description="sha256 of the checkpoint file")
    size_bytes: int = Field(description="size of the checkpoint file")
    incremental: bool = Field(description="generation uses cached per-level state (Fast WaveNet)")
    integrity: IntegrityInfo = Field(description="how the file's bytes were checked when it was loaded")
    conditions: dict[str, Any] | None = Field(
        None,
        description="for a conditioned model: the request fields it takes (sex: its values; year: "
        "its range and the bucket it is used in), and what leaving one out does; null: none",
    )


class Limits(BaseModel):
    max_n: int = Field(description="most names one /generate may ask for")
    max_prefix_length: int = Field(description="longest prefix accepted")
    max_score_names: int = Field(description="most names one /score may ask for")


class ModelList(BaseModel):
    data: list[ModelInfo] = Field(description="every loaded model, by name")
    count: int = Field(description="how many models are loaded")
    default: str = Field(description="the model used when a request names none")
    limits: Limits = Field(description="the service's request limits")
    manifest: bool = Field(
        description="whether the models folder has a SHA256SUMS that every loaded file matched; "
        "without one, files are checked against their own CRC-32s and digests only"
    )
    skipped: dict[str, str] = Field(
        description="checkpoints left out at start-up (NAMEGEN_SKIP_BAD_MODELS), with the reason"
    )


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"], description="ok while the process answers")


class ReadyResponse(BaseModel):
    status: str = Field(examples=["ready"], description="ready once the models are loaded, else loading")
    models: list[str] = Field(description="the loaded models")
    default: str | None = Field(None, description="the default model")


class ErrorResponse(BaseModel):
    detail: Any = Field(description="a message, or a list of {loc, msg, type} naming each bad field")

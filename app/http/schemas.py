"""Request and response bodies of the HTTP API (Pydantic v2). Field names are part of the contract.
The request bodies are defined here; the response bodies in the Python client's namegen.schemas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.config import LENGTH_CEILING, N_CEILING, PREFIX_CEILING
from checkpoint_format import MODEL_NAME_MAX

# the response bodies live with the Python client (clients/python), which shares them without
# importing the service; re-exported here for the routes
from namegen.schemas import (
    CharProb,
    CorpusInfo,
    ErrorResponse,
    FullName,
    GenerateResponse,
    HealthResponse,
    IntegrityInfo,
    Limits,
    ModelInfo,
    ModelList,
    ModelMetrics,
    NameScore,
    NextCharResponse,
    ReadyResponse,
    ScoreResponse,
)

__all__ = [  # the response bodies, for the routes; the request bodies below
    "CharProb",
    "CorpusInfo",
    "ErrorResponse",
    "FullName",
    "GenerateResponse",
    "HealthResponse",
    "IntegrityInfo",
    "Limits",
    "ModelInfo",
    "ModelList",
    "ModelMetrics",
    "NameScore",
    "NextCharResponse",
    "ReadyResponse",
    "ScoreResponse",
]

ModelName = Field(
    None,
    min_length=1,
    max_length=MODEL_NAME_MAX,
    description="model to use (see GET /models); default: the service's default model",
    examples=["names"],
)


Sex = Field(
    None,
    min_length=1,
    max_length=32,  # long enough for any word a client may try, which then hears what is allowed
    description="condition: F, M or neutral (names a girl's and a boy's condition find about as "
    "likely: the two next-character distributions' normalised geometric mean at every step), for "
    "models that take it (GET /models lists each model's conditions); left out, the model's names "
    "of either sex",
    examples=["F"],
)
Year = Field(
    None,
    ge=0,
    le=9999,
    description="condition: a year of birth (names-era: 1880-2024, used as its decade), for models "
    "that take it; left out, the model's names of any year",
    examples=[1925],
)

Country = Field(
    None,
    min_length=1,
    max_length=32,
    description="condition: a country, as its ISO 3166-1 alpha-2 code in any case (FR, ru), for models "
    "that take it (GET /models lists each model's countries); left out, the model's names of any country",
    examples=["FR"],
)


class RequestModel(BaseModel):
    """A request body: unknown fields refused, and JSON types taken as they are (strict): `true`
    is no n, `1` no boolean, `"5"` no number. The GET routes read their query strings into the same
    models in lax mode (app/http/deps.py parse_query), where every value arrives as text."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ConditionFields(RequestModel):
    """The fields that condition a model, shared by every request that reads one (/generate,
    /next-char, /score). A new condition is one field here; app/http/validation.py condition_of
    checks each against the model's conditions by name."""

    sex: str | None = Sex
    year: int | None = Year
    country: str | None = Country

    def condition_values(self) -> dict[str, str | int]:
        """The condition fields the request sets, by name."""
        return {
            name: value for name in ConditionFields.model_fields if (value := getattr(self, name)) is not None
        }


class GenerateRequest(ConditionFields):
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
    full: bool = Field(
        False,
        description="full names: a given name from `model` and a family name from `family_model`, each "
        "sampled with the same settings (prefix, lengths, unique and novel apply to each part)",
    )
    family_model: str | None = Field(
        None,
        min_length=1,
        max_length=MODEL_NAME_MAX,
        description="with full: the model of the family names (default: surnames)",
        examples=["surnames"],
    )
    family_prefix: str = Field(
        "", max_length=PREFIX_CEILING, description="with full: every family name starts with this (any case)"
    )


class NextCharRequest(ConditionFields):
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


class ScoreRequest(ConditionFields):
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

    @model_validator(mode="after")
    def names_have_sane_lengths(self) -> ScoreRequest:
        for i, name in enumerate(self.names):
            if not 1 <= len(name) <= LENGTH_CEILING:
                raise ValueError(f"names[{i}] must have 1 to {LENGTH_CEILING} characters, got {len(name)}")
        return self

"""The API's response bodies (Pydantic v2), shared by the service and this client: the service
declares and returns them (app/http/schemas.py re-exports them), the client parses answers into
them. Pydantic only, so that the client installs without the service. Field names are part of the
contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FullName(BaseModel):
    name: str = Field(description="the given and family name, joined by a space")
    given: str = Field(description="the given name, from the request's model")
    family: str = Field(description="the family name, from family_model")
    neutral: bool | None = Field(
        None,
        description="whether the given name is a real gender-neutral name by the rule the given "
        "model's data names; null: the model names no such rule",
    )


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
        description="samples dropped, by reason: too_long, mixed_script (letters of two scripts), "
        "misshapen (begins with a space, hyphen or apostrophe, or ends with a space or hyphen), "
        "duplicate, in_corpus, not_neutral (sex "
        "neutral: a real name the data does not call neutral, or an invented one far likelier for one "
        "sex), unsafe; missing = n - count "
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


class NameScore(BaseModel):
    name: str = Field(description="the name, lowercased")
    logprob: float = Field(description="natural log-probability of the name and its end")
    nats_per_char: float = Field(description="-logprob / (characters + 1): lower is more name-like")
    perplexity: float = Field(description="exp(nats_per_char)")
    in_corpus: bool = Field(description="whether the name is in the model's training corpus")
    neutral: bool | None = Field(
        None,
        description="whether the name is a real gender-neutral name by the rule the model's data "
        "names (GET /models: neutral_rule); null: the model names no such rule",
    )


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


class CountryInfo(BaseModel):
    country: str = Field(description="the country's name, in English")
    office: str = Field(description="the statistics office or civil register that publishes the counts")
    counts: str = Field(description="what a count is: births in which years, or people living when")
    licence: str = Field(description="the licence the office publishes the counts under")
    female: int = Field(description="girls' names of the country in the corpus")
    male: int = Field(description="boys' names of the country in the corpus")


class CorpusInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description="the corpus's name")
    source: str = Field(description="where the data comes from")
    licence: str = Field(description="the data's and the package's licences")
    items: int = Field(description="items (lines) in the corpus")
    sha256: str = Field(description="sha256 of the corpus file (uncompressed)")
    countries: dict[str, CountryInfo] | None = Field(
        None,
        description="a corpus of several countries (names-world): each country the model was trained "
        "on, by ISO 3166-1 alpha-2 code, with its office, counts, licence and names; null: one country",
    )


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
        description="for a conditioned model: the request fields it takes (sex: its values, and "
        "`pairs`: a value that combines two, neutral; year: its range and the bucket it is used in), "
        "and what leaving one out does; null: none",
    )
    neutral_rule: str | None = Field(
        None, description="what makes a real name gender-neutral in the model's data (/score's neutral)"
    )
    neutral_names: int | None = Field(None, description="how many of the model's real names meet it")


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

"""The OpenAPI document is enough to use the API: stable operation ids for generated clients, an
example for every request body, a description for every field a request sends."""

from __future__ import annotations

from typing import Any

from app.main import create_app

# what generated clients call their methods: renaming one breaks every client, so it is fixed here
OPERATION_IDS = {
    ("post", "/generate"): "generate",
    ("get", "/generate"): "generate_get",
    ("post", "/next-char"): "next_char",
    ("get", "/next-char"): "next_char_get",
    ("post", "/score"): "score",
    ("get", "/models"): "list_models",
    ("get", "/models/{name}"): "get_model",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
    ("get", "/metrics"): "metrics",
}


def schema() -> dict[str, Any]:
    return create_app().openapi()


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {(m, path): op for path, ops in schema()["paths"].items() for m, op in ops.items()}


def test_every_operation_has_its_stable_id() -> None:
    ids = {key: op.get("operationId") for key, op in operations().items()}
    assert {k: v for k, v in ids.items() if k in OPERATION_IDS} == OPERATION_IDS
    api = {k: v for k, v in ids.items() if not k[1].startswith(("/static", "/docs", "/redoc"))}
    assert set(api) <= set(OPERATION_IDS) | {("get", "/")}, set(api) - set(OPERATION_IDS)
    assert len(set(ids.values())) == len(ids)  # unique


def resolve(spec: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    out: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return out


def test_request_bodies_have_examples_and_every_field_a_description() -> None:
    spec = schema()
    bodies = 0
    for (method, path), op in operations().items():
        body = op.get("requestBody")
        if body is not None:
            bodies += 1
            body_schema = resolve(spec, body["content"]["application/json"]["schema"])
            assert body_schema.get("examples"), f"{method} {path}: no example"
            for name, prop in body_schema["properties"].items():
                assert prop.get("description"), f"{method} {path}: field {name} has no description"
        for param in op.get("parameters", []):
            assert param.get("description"), f"{method} {path}: parameter {param['name']} has no description"
    assert bodies == 3  # POST /generate, /next-char, /score


def test_query_parameters_mirror_the_post_bodies() -> None:
    spec = schema()
    ops = operations()
    for path in ("/generate", "/next-char"):
        body = resolve(spec, ops["post", path]["requestBody"]["content"]["application/json"]["schema"])
        query = {p["name"] for p in ops["get", path]["parameters"]}
        assert query == set(body["properties"])


def test_the_services_own_answers_are_in_the_document() -> None:
    """A generated client parses every answer it may get: the middleware's 503 (busy, loading),
    413 and 408 (bodies), the protocol's 431, each as ErrorResponse, as are the routes' 4xx
    (/readyz's own 503 says which models are loaded)."""
    for (method, path), op in operations().items():
        if path.startswith(("/static", "/docs", "/redoc")) or path == "/":
            continue
        codes = {"431", "503", *({"408", "413"} if "requestBody" in op else set())}
        assert codes <= set(op["responses"]), (method, path)
        for code, answer in op["responses"].items():
            if (code.startswith("4") or code == "503") and (path, code) != ("/readyz", "503"):
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path, code, ref)

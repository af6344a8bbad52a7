"""Logging set-up: plain text or JSON lines (NAMEGEN_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import logging
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            line.update(extra)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(fmt: str, level: str) -> None:
    """Route namegen's loggers to stderr in the chosen format (idempotent). In JSON, uvicorn's
    own loggers are switched over too, so that every line on stderr is one JSON object."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    names = ["namegen"] + (["uvicorn", "uvicorn.error", "uvicorn.access"] if fmt == "json" else [])
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.getLogger("namegen").setLevel(level.upper())

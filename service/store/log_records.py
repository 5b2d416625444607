"""Log records that carry the job they belong to, as text or JSON lines.

FastAPI-free: the workers use it too. The job id lives in a context variable that the worker
sets while it runs a job; a filter copies it onto every record a handler sees.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

current_job_id: ContextVar[int | None] = ContextVar("torchkiln_job_id", default=None)

# ``job_tag`` is " [job 7]" inside a job and empty outside one.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s%(job_tag)s %(message)s"
# Chatter at INFO that says nothing to an operator: alembic's dialect notes (our own line
# reports the migrations), and httpx's line per request (the warm-up's, the CLI's).
QUIET_LOGGERS = ("alembic.runtime.migration", "httpx")


class JobIdFilter(logging.Filter):
    """Adds ``record.job_id`` (None outside a job); never drops a record.

    On handlers, not loggers: a logger's filters do not see records from its children.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = current_job_id.get()
        record.job_tag = f" [job {record.job_id}]" if record.job_id is not None else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, job id, process, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
            "process": record.processName,
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def logging_config(log_format: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root logger; uvicorn takes the same dict."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"job_id": {"()": JobIdFilter}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["job_id"],
            }
        },
        "root": {"level": "INFO", "handlers": ["default"]},
        # uvicorn's loggers keep no handlers of their own, so they reach the root's.
        "loggers": {
            **{
                name: {"level": "INFO", "handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


def configure_logging(log_format: LogFormat) -> None:
    logging.config.dictConfig(logging_config(log_format))

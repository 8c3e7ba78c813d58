"""The run's own log: `.gadugi/runs/<run-id>/orchestrator.jsonl` (`--log-format json`) or
`orchestrator.log` (text), with run_id and task_id on every record.

Stdlib logging only: the package's modules already log through `logging.getLogger(__name__)`, so
one handler on the `orchestrator` logger catches all of it, and `EventLog` adds every engine event.
"""
from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from orchestrator.models import TaskStatus, iso
from orchestrator.observe.events import (
    BreakerTripped,
    EngineEvent,
    Heartbeat,
    Interrupted,
    Killing,
    RunFinished,
    RunStarted,
    TaskFinished,
    record,
)

LogFormat = Literal["text", "json"]
ROOT_LOGGER = "orchestrator"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(run_id)s %(task_id)s] %(message)s"
# Attributes every LogRecord has; anything else on a record came in through `extra=` and is kept.
_saved_levels: dict[int, int] = {}  # handler id -> the logger level before attach_run_log
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "run_id", "task_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, run_id, task_id, then any extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": iso(datetime.fromtimestamp(record.created, tz=UTC)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "task_id": getattr(record, "task_id", None),
        }
        data.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_"))
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class _RunContext(logging.Filter):
    """Stamps run_id on every record (and an empty task_id where none was given)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = self.run_id
        if not hasattr(record, "task_id"):
            record.task_id = None
        return True


def log_path(run_dir: Path, log_format: LogFormat) -> Path:
    return run_dir / ("orchestrator.jsonl" if log_format == "json" else "orchestrator.log")


def attach_run_log(run_dir: Path, run_id: str, log_format: LogFormat = "text",
                   level: int = logging.INFO) -> logging.Handler:
    """Start writing the `orchestrator` logger (and its children) to the run's log file.
    Returns the handler; pass it to `detach_run_log` when the run ends."""
    handler = logging.FileHandler(log_path(run_dir, log_format), encoding="utf-8")
    handler.setLevel(level)
    handler.addFilter(_RunContext(run_id))
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    _saved_levels.setdefault(id(handler), logger.level)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    logger = logging.getLogger(ROOT_LOGGER)
    logger.removeHandler(handler)
    logger.setLevel(_saved_levels.pop(id(handler), logger.level))
    handler.close()


class TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose records carry task_id and attempt (merged under any per-call `extra`)."""

    def __init__(self, logger: logging.Logger, task_id: str, attempt: int | None = None) -> None:
        super().__init__(logger, {"task_id": task_id, "attempt": attempt})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def task_logger(task_id: str, attempt: int | None = None, name: str = ROOT_LOGGER + ".task") -> TaskLogger:
    return TaskLogger(logging.getLogger(name), task_id, attempt)


class EventLog:
    """Engine observer that logs every event, and owns the run log file: opened at `run_started`
    (the first moment the run directory is known), closed at `run_finished` or `close()`.

    Heartbeats are DEBUG (several a second per agent); failures WARNING; the rest INFO.
    """

    def __init__(self, log_format: LogFormat = "text", *, level: int = logging.INFO,
                 logger: logging.Logger | None = None) -> None:
        self.log_format = log_format
        self.level = level
        self.logger = logger or logging.getLogger(ROOT_LOGGER + ".events")
        self.handler: logging.Handler | None = None
        self.path: Path | None = None

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, RunStarted) and self.handler is None:
            self.handler = attach_run_log(event.run_dir, event.run_id or event.run_dir.name, self.log_format, self.level)
            self.path = log_path(event.run_dir, self.log_format)
        fields = record(event)
        level = logging.DEBUG if isinstance(event, Heartbeat) else logging.INFO
        if isinstance(event, TaskFinished) and event.result.status in (TaskStatus.FAILED, TaskStatus.TIMEOUT) \
                or isinstance(event, BreakerTripped | Killing | Interrupted):
            level = logging.WARNING
        detail = fields.get("error") or fields.get("reason") or fields.get("phase") or fields.get("message") or ""
        task_id = event.task_id
        self.logger.log(level, "%s %s%s", event.name, task_id or "-", f": {detail}" if detail else "",
                        extra={"event": event.name, "task_id": task_id or None, "data": fields})
        if isinstance(event, RunFinished):
            self.close()

    def close(self) -> None:
        if self.handler is not None:
            detach_run_log(self.handler)
            self.handler = None

"""structlog setup for both binaries: JSON or console output, stdlib loggers routed through
the same renderer, and secret redaction that also covers exception text.

The driver's own lines (``get_logger``) go straight from structlog's processors to the stream:
no ``logging.LogRecord``, no handler, no formatter. That is every CSI call's log line, and
the standard library's path cost several times the rendering itself (issue 22;
docs/performance.md). Other libraries' loggers (botocore, aiohttp, h2, ...) keep theirs: the
root handler renders their records with the same processors, to the same stream.

CSI marks every sensitive field ``secrets``; message reprs print them as ``secrets={...}``.
Redaction therefore works on two levels: any mapping key containing "secret" has its value
replaced before rendering, and any rendered string (event text, exception messages,
formatted tracebacks) has ``secrets=...`` / ``"secrets": ...`` spans scrubbed.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "***"
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")

# Bounded quantifiers and a word boundary keep this linear: with ``\w*`` a long run of word
# characters (a huge volume id, say) backtracks quadratically.
_SECRET_SPANS = re.compile(
    r"""(?P<key>['"]?\b\w{0,64}secrets?\w{0,64}['"]?\s{0,8}[=:]\s{0,8})"""
    r"""(?P<value>\{[^{}]*\}|'[^']*'|"[^"]*"|\S+)""",
    re.IGNORECASE,
)


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and "secret" in key.lower()


def scrub_text(text: str) -> str:
    """Remove secret values from free text such as a message repr or a traceback."""
    if "secret" not in text.lower():
        return text
    return _SECRET_SPANS.sub(lambda m: f"{m.group('key')}{REDACTED}", text)


def redact(value: Any) -> Any:
    """Return ``value`` with every secret-looking entry replaced, recursively."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(item) for item in value)
    if isinstance(value, str):
        return scrub_text(value)
    return value


def _redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return redact(event_dict)  # type: ignore[no-any-return]


def _shared_processors() -> list[Processor]:
    """What the root handler adds to another library's ``LogRecord``."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def _own_processors() -> list[Processor]:
    """What a line of the driver's own gets before rendering (its logger's name is bound in
    its context: ``Logger``)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(log_format: str) -> list[Processor]:
    if log_format == "json":
        return [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            _redact_processor,
            structlog.processors.JSONRenderer(),
        ]
    # Console: format the traceback to text first so the scrubber sees it.
    return [
        structlog.processors.format_exc_info,
        _redact_processor,
        structlog.dev.ConsoleRenderer(colors=False),
    ]


class LineWriter:
    """The end of structlog's chain for the driver's lines: writes each rendered line and
    flushes it. Like the standard library's handlers, a stream that cannot be written (closed,
    a broken pipe) never raises into the code that logs: a CSI call must not fail for its log
    line. Without a stream it writes to ``sys.stderr`` as it is at each line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stderr
        try:
            with self._lock:
                stream.write(message + "\n")
                stream.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say so

    debug = info = warning = warn = error = err = critical = exception = fatal = msg


#: Bumped by each ``configure_logging``: a ``Logger`` rebinds when it sees a new value.
_configuration = [0]


def configure_logging(log_format: str = "json", level: str = "info",
                      stream: TextIO | None = None) -> None:
    """Configure structlog (the driver's lines, written straight to ``stream``) and the
    standard library's root logger (other libraries' records) to share one renderer."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    writer = LineWriter(stream)
    structlog.configure(
        processors=[*_own_processors(), *_renderer(log_format)],
        logger_factory=lambda *_: writer,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_renderer(log_format)],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # Library chatter (botocore, aiohttp, h2) stays at warning unless we debug.
    for noisy in ("botocore", "aiobotocore", "hpack", "h2", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))
    _configuration[0] += 1


class Logger:
    """A named logger of the driver's: ``info``/``warning``/``error``/``debug`` take an event
    and its fields. Made at import time (before ``configure_logging``), it binds structlog's
    logger for the configuration in force on its first line and again after each
    reconfiguration, not on every line."""

    __slots__ = ("_bound", "_configuration", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._bound: Any = None
        self._configuration = -1

    def _logger(self) -> Any:
        if self._configuration != _configuration[0]:
            self._bound = structlog.get_logger().bind(logger=self.name)
            self._configuration = _configuration[0]
        return self._bound

    def debug(self, event: str, **fields: Any) -> None:
        self._logger().debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._logger().info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._logger().warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._logger().error(event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the exception being handled (its traceback rendered, scrubbed)."""
        self._logger().exception(event, **fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def redacted_fields(fields: MutableMapping[str, Any]) -> dict[str, Any]:
    """A copy of a message's fields fit for logging (secrets replaced)."""
    return redact(dict(fields))  # type: ignore[no-any-return]

"""structlog setup for both binaries: JSON or console output, stdlib loggers routed through
the same renderer, and secret redaction that also covers exception text.

CSI marks every sensitive field ``secrets``; message reprs print them as ``secrets={...}``.
Redaction therefore works on two levels: any mapping key containing "secret" has its value
replaced before rendering, and any rendered string (event text, exception messages,
formatted tracebacks) has ``secrets=...`` / ``"secrets": ...`` spans scrubbed.
"""

from __future__ import annotations

import logging
import re
import sys
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
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
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


def configure_logging(log_format: str = "json", level: str = "info",
                      stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's root logger to share one renderer."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


def redacted_fields(fields: MutableMapping[str, Any]) -> dict[str, Any]:
    """A copy of a message's fields fit for logging (secrets replaced)."""
    return redact(dict(fields))  # type: ignore[no-any-return]

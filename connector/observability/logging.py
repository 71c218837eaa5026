"""Structured logs: JSON lines (default) or human text on stderr, through structlog.

Every ``logging.getLogger(...)`` call in the connector goes through structlog's
``ProcessorFormatter``, so stdlib records and structlog events come out the same way: one JSON
object per line with ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event`` (the
message) and the record's ``extra={...}`` fields as keys.

PHI policy (``docs/operations.md``): log ids (message ids, delivery tags, queue names) and
counts, codes and exception class names, never names, identifiers of patients, birth dates,
free text, message bodies, or the text of exceptions raised on input (it may quote the input).
JSON is written with ``ensure_ascii=False`` so that what a log holds is what a scan sees.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _IvpushHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so that reconfiguring replaces only it."""


def _leading_fields(_logger: object, _method: str, event: EventDict) -> EventDict:
    """``timestamp``, ``level``, ``logger``, ``event`` first: lines read alike by eye and by ``cut``."""
    head = {key: event.pop(key) for key in ("timestamp", "level", "logger", "event") if key in event}
    return {**head, **event}


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """Route stdlib logging and structlog to one stderr handler in the chosen format.

    Args:
        level: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL`` (any case).
        fmt: ``json`` (one object per line) or ``text`` (for a terminal).
        stream: Where to write (default: ``sys.stderr`` at the time of the call).

    Returns:
        The installed handler (tests read from its stream).

    Raises:
        ValueError: An unknown level or format.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown log level '{level}' (choose from {', '.join(LEVELS)})")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format '{fmt}' (choose from {', '.join(FORMATS)})")
    import structlog  # noqa: PLC0415 - imported when logging is set up: `ivpush <command> --help` skips it (#15)

    shared: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # reconfiguring (tests, forked consumers) must take effect
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _leading_fields,
            renderer,
        ],
    )
    handler = _IvpushHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _IvpushHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pika logs every frame problem at length; our own messages say what matters.
    logging.getLogger("pika").setLevel(logging.WARNING if level == "DEBUG" else logging.CRITICAL)
    return handler

"""Structured JSON logs, one line an event, with the correlation id of the request."""

from __future__ import annotations

import logging
import sys


def _structlog_without_rich():
    """structlog, imported as if rich were not installed. Its dev console imports rich when
    it is (typer brings it in) for pretty tracebacks: 0.17 of the 0.26 s its import took in
    every process's start (a rebuild's worker waits for it). These logs are JSON; rich is
    never used by them, and a later `import rich` (the CLI's) still works."""
    if "rich" in sys.modules:
        import structlog
        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` now raises ImportError
    try:
        import structlog
    finally:
        del sys.modules["rich"]
    return structlog


structlog = _structlog_without_rich()

_configured = False


def configure(service: str, level: str = "INFO") -> None:
    """Configure stdlib logging and structlog once per process, both as JSON to stdout."""
    global _configured
    if _configured:
        return
    _configured = True
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.JSONRenderer()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.contextvars.bind_contextvars(service=service)


def get(name: str = "ganshou") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)

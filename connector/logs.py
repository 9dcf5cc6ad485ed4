"""Log lines on stderr, as text or JSON, with secrets masked (connector/redaction.py)."""

from __future__ import annotations

import logging
import sys

from connector.redaction import RedactingFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log lines on stderr: `text`, or `json` (one object per line: timestamp, level,
    logger, process, message, and the exception if any) for log collectors."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)

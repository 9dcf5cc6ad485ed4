"""Secrets never shown: found in the settings as given, masked in every line written.

A secret is any value of a variable whose name says so (`DATABASE_PASSWORD`,
`KAFKA_SASL_PASSWORD`, `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`, …) and every password in
`DATABASE_URL` and `SCHEMA_REGISTRY_URL`, read from the parsed connection parameters
(`password`, `sslpassword`) and from the text itself, so a URL libpq cannot parse, or a
password holding `/`, `?`, `#` or `&`, is covered too. `remember` registers them (the
command line's start for the environment, `config.read_secret_files` for mounted files); the
process's standard output and error, and every log record, pass through `redact`, which
replaces each (as written, percent-decoded and percent-encoded) with `***`. Error texts
that quote a connection string (libpq's parse errors do) are masked the same way.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import quote, unquote

MASK = "***"
MIN_LENGTH = 4  # shorter values are masked in settings, but not searched for in free text
_SECRET_WORDS = ("password", "secret", "token", "credential", "private", "user.info", "user_info")
_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^:@/?#]*:(.*)@", re.I | re.S)  # greedy: a password may hold @ / ? #
_QUERY = re.compile(r"[?&](?:ssl)?password=([^&#]*)", re.I)
_KEYWORD = re.compile(r"\b(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", re.I)
_known: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """True for a setting whose value must never be shown (passwords, tokens, keys)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS) or lowered.endswith(".key.pem")


def url_secrets(url: str) -> set[str]:
    """Every password in a connection URL or libpq key=value string."""
    found = {m.group(1) for pattern in (_USERINFO, _QUERY) for m in pattern.finditer(url)}
    found |= {m.group(1).strip("'") for m in _KEYWORD.finditer(url)}
    try:
        from psycopg.conninfo import conninfo_to_dict

        parsed = conninfo_to_dict(re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url))
        found |= {str(parsed[k]) for k in ("password", "sslpassword") if parsed.get(k)}
    except Exception:  # not parseable: the text alone tells
        pass
    return found


def secrets_in(env: Mapping[str, str]) -> set[str]:
    """The secrets an environment holds (a `*_FILE` variable names a file, not a secret:
    `read_secret_files` remembers what it reads)."""
    found: set[str] = set()
    for name, value in env.items():
        if name.endswith("_FILE"):
            continue
        if name in ("DATABASE_URL", "SCHEMA_REGISTRY_URL"):
            found |= url_secrets(value)
        elif is_secret_name(name) and value:
            found |= {value, value.partition(":")[2]}  # user:password pairs: the password alone too
    return found


def remember(secrets: Iterable[str]) -> None:
    forms = {form for secret in secrets for form in (secret, unquote(secret), quote(secret, safe=""))}
    with _lock:
        _known.update(form for form in forms if len(form) >= MIN_LENGTH)


def redact(text: str) -> str:
    if not _known:
        return text
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingStream:
    """A text stream that masks known secrets in everything written to it."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream

    def write(self, text: str) -> int:
        return self.wrapped.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class RedactingFilter(logging.Filter):
    """Masks known secrets in a record's message and exception text before any formatter
    (text or JSON, which would escape them past the stream's reach) sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

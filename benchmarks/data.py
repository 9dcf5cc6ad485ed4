"""The benchmark's data: which records are produced, the table they go to, and the same
rows decoded ahead for the bare COPY. Used by benchmarks/bench.py, runs.py and scenarios.py.

Text (`--text`):
- `realistic` (the default): text as users have it. Every record's text columns hold
  non-ASCII letters, and each record one of: a quoted phrase, a Windows path (backslashes),
  a tab-separated log line, a two-line note. Even records are JSON written with `\\u`
  escapes (Python's `json.dumps` default), odd ones raw UTF-8 (orjson's).
- `ascii`: the same text made plain, character for character: ASCII letters in place of
  the others, no character JSON or COPY escapes (so the two differ in nothing else).

Keys (`--keys`): none by default, each record in partition i mod the partition count;
with `--keys`, each record keyed by its event_id, where the producer's partitioner puts it.

Table (`--table`):
- `narrow`: event_id bigint, user_id text, at timestamptz, page text, amount numeric.
- `wide`: those five and sixteen more, of every common type — integer, numeric(12,2),
  double precision, boolean, varchar(n), date, uuid, jsonb, timestamptz, text, text[] —
  seven of them nullable and null in every other record.
- `loose`: records and table that match as an application's often do: the narrow
  records with one more field no column takes (`client`, an object), into the narrow
  table with two more columns the records leave out, `row_id` (an identity) and
  `loaded_at timestamptz NOT NULL DEFAULT now()`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, NamedTuple

import orjson
from psycopg.types.json import Jsonb

NAMES = ("Zoë Ångström", "José Núñez", "Łukasz Żółć", "Björk Guðmundsdóttir", "陈伟", "Siobhán O'Brien",
         "Çağla Öztürk", "Νίκος Παπαδόπουλος", "Ana María Peña", "Dvořák Antonín")
CITIES = ("São Paulo", "Zürich", "Kraków", "Reykjavík", "東京", "Düsseldorf", "Malmö", "Tromsø")
PAGES = ('/search?q="naïve café" {n}', "C:\\Users\\{user}\\Documents\\report-{n}.csv",
         "GET /api/items/{n}\t200\t{ms} ms\tgrüße", "first line {n}\nsecond line — ünïcode, ½ off",
         'Mozilla/5.0 (X11; "{city}") build/{n}')  # the last: a user agent


def _plain(text: str) -> str:
    """The same text, character for character, in ASCII that neither JSON nor COPY escapes."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else " " if c.isspace() else "/" if c == "\\" else
                   "'" if c == '"' else "x" for c in text)


class _Text(NamedTuple):
    names: tuple[str, ...]
    cities: tuple[str, ...]
    pages: tuple[str, ...]


# `ascii` is `realistic` made plain, so the two differ in their characters alone, not in length.
TEXTS = {"realistic": _Text(NAMES, CITIES, PAGES),
         "ascii": _Text(*(tuple(_plain(t) for t in pool) for pool in (NAMES, CITIES, PAGES)))}


def _page(i: int, text: _Text) -> str:
    return text.pages[i % 4].format(n=i % 997, ms=i % 50, user=text.names[i % 10].split()[0])


def _narrow(i: int, text: _Text) -> dict[str, Any]:
    return {"event_id": i, "user_id": f"{text.names[i % 10]} #{i % 5000:05d}", "at": "2026-11-22T10:00:00.123Z",
            "page": _page(i, text), "amount": round(i % 10_000 / 100, 2)}


def _wide(i: int, text: _Text) -> dict[str, Any]:
    half = i % 2 == 0  # nullable columns are null in every other record
    city = text.cities[i % 8]
    return {**_narrow(i, text), "qty": i % 1000, "score": i / 7, "active": i % 3 == 0,
            "country": city, "day": f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
            "session": str(uuid.UUID(int=i * 2654435761 % (1 << 128))),
            "attrs": {"colour": text.cities[(i + 1) % 8], "size": i % 5, "tags": ["a", "b c"], "ok": True},
            "ref": None if half else i * 3, "note": None if half else _page(i + 1, text),
            "discount": None if half else round(i % 300 / 7, 2), "rating": None if half else i % 5 / 2,
            "verified": None if half else i % 2 == 1,
            "shipped_at": None if half else f"2026-11-{i % 28 + 1:02d}T{i % 24:02d}:30:00+01:00",
            "city": None if half else city, "agent": text.pages[4].format(city=city, n=i % 97),
            "tags": [city, text.names[(i + 3) % 10], _page(i + 2, text)][:i % 4]}  # 0 to 3 tags


LEFT = "client"  # the loose records' field no column takes
NARROW_DDL = "event_id bigint {key}, user_id text, at timestamptz, page text, amount numeric"
LOOSE_DDL = NARROW_DDL + ", row_id bigint GENERATED ALWAYS AS IDENTITY, loaded_at timestamptz NOT NULL DEFAULT now()"
WIDE_DDL = NARROW_DDL + (", qty integer, score double precision, active boolean, country varchar(64), "
                         "day date, session uuid, attrs jsonb, ref bigint, note text, discount numeric(12,2), "
                         "rating double precision, verified boolean, shipped_at timestamptz, city varchar(64), "
                         "agent text, tags text[]")
# The binary COPY's type of each column, in table order.
NARROW_TYPES = ("bigint", "text", "timestamptz", "text", "numeric")
WIDE_TYPES = NARROW_TYPES + ("integer", "float8", "bool", "varchar", "date", "uuid", "jsonb", "bigint", "text",
                             "numeric", "float8", "bool", "timestamptz", "varchar", "text", "text[]")
_DECODE: dict[str, Callable[[Any], Any]] = {"timestamptz": datetime.fromisoformat, "date": date.fromisoformat,
                                           "uuid": uuid.UUID, "numeric": lambda v: Decimal(str(v)), "jsonb": Jsonb}


@dataclass(frozen=True)
class Workload:
    text: str = "realistic"  # or "ascii"
    table: str = "narrow"  # or "wide", "loose"
    keyed: bool = False  # records keyed by their event_id and spread by the producer's partitioner

    def key(self, i: int) -> bytes | None:
        return str(i).encode() if self.keyed else None

    def partition(self, i: int, partitions: int) -> int:
        """Record i's partition: i mod `partitions`, or -1 when keyed (the producer's
        partitioner picks it by the key: partitions then end unevenly, and a run's
        checkpoints need not divide the records)."""
        return -1 if self.keyed else i % partitions

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.document(0) if c != LEFT)

    @property
    def types(self) -> tuple[str, ...]:
        return WIDE_TYPES if self.table == "wide" else NARROW_TYPES

    def ddl(self, table: str, upsert: bool, fillfactor: int | None = None) -> str:
        ddl = {"wide": WIDE_DDL, "loose": LOOSE_DDL}.get(self.table, NARROW_DDL)
        columns = ddl.format(key="PRIMARY KEY" if upsert else "NOT NULL")
        storage = "" if fillfactor is None else f" WITH (fillfactor = {int(fillfactor)})"
        return f"CREATE TABLE {table} ({columns}){storage}"

    def document(self, i: int) -> dict[str, Any]:
        text = TEXTS[self.text]
        if self.table == "loose":
            return {**_narrow(i, text), LEFT: {"app": text.cities[i % 8], "version": f"4.{i % 7}.{i % 3}"}}
        return (_wide if self.table == "wide" else _narrow)(i, text)

    def value(self, i: int) -> bytes:
        """Record i's value: JSON with `\\u` escapes (even i) or raw UTF-8 (odd i), when realistic."""
        document = self.document(i)
        if self.text == "realistic" and i % 2 == 0:
            return json.dumps(document).encode()
        return orjson.dumps(document)

    def text_digest(self, records: int) -> str:
        """md5 of every record's user_id and page, in event_id order, as the table's
        `md5(string_agg(user_id || page, '' ORDER BY event_id))` gives it when exact."""
        digest = hashlib.md5()
        for i in range(records):
            document = self.document(i)
            digest.update((document["user_id"] + document["page"]).encode())
        return digest.hexdigest()

    def row(self, i: int) -> tuple[Any, ...]:
        """Record i as the bare COPY takes it: each value decoded to its column's Python type."""
        document = orjson.loads(self.value(i))
        return tuple(None if document[c] is None else _DECODE.get(t, _same)(document[c])
                     for c, t in zip(self.columns, self.types, strict=True))


def _same(value: Any) -> Any:
    return value

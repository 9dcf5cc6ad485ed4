"""Kafka's messages at the edge: a message becomes the project's Record only where a
record is needed whole; the loop reads runs of them through `MESSAGE_FIELDS`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message, TopicPartition

from connector.backends._columns import message_columns, message_fields
from connector.models import Record
from connector.models import TopicPartition as TP
from connector.protocol.runs import Fields

_make = tuple.__new__  # a Record without the keyword-argument handling of its constructor


def to_record(message: Message) -> Record:
    """A message as the project's Record (converted at the edge, when needed whole)."""
    ts_type, ts = message.timestamp()
    headers = message.headers()
    return _make(Record, (message.topic(), message.partition(), message.offset(), message.key(), message.value(),
                          ts if ts_type else None, tuple(headers) if headers else ()))


def struct_columns() -> Callable[[Sequence[Any], Sequence[bytes | None]], tuple[bytes, ...]] | None:
    """The snapshot's columns read from Message's C struct (`_columns.c`), if that reads
    messages as their methods do: checked on messages built here, with a timestamp and a
    key and without; else None, and the codec calls the methods (a confluent-kafka whose
    struct is laid out otherwise)."""
    try:
        samples = [Message(topic="t", partition=1, offset=2**40 + 7, key=b"k\0", value=b"v",
                           timestamp=(TIMESTAMP_CREATE_TIME, 1_733_000_000_123)),
                   Message(topic="t", partition=1, offset=5)]
        found = [message_fields(Message, m) for m in samples]
    except TypeError:  # Message cannot be built, or is smaller than the struct read
        return None
    expected = [(m.offset(), ms if kind else -1, 0 if m.key() is None else id(m.key()))  # CPython: id is the address
                for m in samples for kind, ms in [m.timestamp()]]
    return functools.partial(message_columns, Message) if found == expected else None


MESSAGE_FIELDS = Fields(to_record, Message.offset, Message.key, Message.timestamp, Message.headers, struct_columns())


def tps_of(partitions: Sequence[TopicPartition]) -> list[TP]:
    return [(p.topic, p.partition) for p in partitions]


def names_of(partitions: Sequence[TopicPartition]) -> str:
    """Partitions as a log line names them: `topic[0], topic[3]`."""
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions)

"""Kafka's messages at the edge: a message becomes the project's Record only where a
record is needed whole; the loop reads runs of them through `MESSAGE_FIELDS`."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message, TopicPartition

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


MESSAGE_FIELDS = Fields(to_record, Message.offset, Message.key, Message.timestamp, Message.headers)


def tps_of(partitions: Sequence[TopicPartition]) -> list[TP]:
    return [(p.topic, p.partition) for p in partitions]


def names_of(partitions: Sequence[TopicPartition]) -> str:
    """Partitions as a log line names them: `topic[0], topic[3]`."""
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions)

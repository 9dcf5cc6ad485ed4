"""The project's error types: one class per condition, so callers decide by type."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error eos-connector raises on purpose."""


class ConfigError(ConnectorError):
    """The settings are invalid; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class MappingError(ConnectorError):
    """A record cannot be turned into a row; names the record's coordinates."""

    def __init__(self, topic: str, partition: int, offset: int, reason: str) -> None:
        self.topic, self.partition, self.offset, self.reason = topic, partition, offset, reason
        super().__init__(f"cannot map record {topic}[{partition}]@{offset}: {reason}")


class SchemaError(ConnectorError):
    """The sink table does not fit the configuration (missing table, key, columns)."""


class TableMissing(SchemaError):
    """The sink table does not exist (SINK_AUTO_CREATE=true creates it)."""


class RouteError(SchemaError):
    """A topic has no table: no route names one, or the name a route makes does not fit."""


class TransientError(ConnectorError):
    """A failure that may succeed if tried again (connection lost, timeout, deadlock)."""


class PermanentError(ConnectorError):
    """A failure that retrying will not fix (permission denied, bad SQL, bad data)."""


class RecordRejected(PermanentError):
    """The database refused a record's row (ERRORS_TOLERANCE=none); names the record."""

    def __init__(self, where: str, checkpoint_id: int, error_class: str, error: str) -> None:
        self.where = where
        super().__init__(f"record {where} was refused by the database in checkpoint {checkpoint_id}: {error_class}: "
                         f"{error}; nothing of the checkpoint was committed (set ERRORS_TOLERANCE=all to "
                         "dead-letter such records instead)")


class RetriesExhausted(ConnectorError):
    """A transient failure outlasted RESTART_STRATEGY; the message holds the last cause."""


class CheckpointTimeout(TransientError):
    """A commit transaction ran past CHECKPOINT_TIMEOUT_MS and was aborted."""


class KafkaError(ConnectorError):
    """The Kafka client reported an error it cannot recover from by itself."""


class RecordsDeleted(KafkaError):
    """The broker deleted records (retention, DeleteRecords) before the pipeline read them,
    or no longer has the offset the database holds (ON_DATA_LOSS=fail)."""


class SnapshotCorrupt(ConnectorError):
    """A persisted snapshot failed its integrity check."""

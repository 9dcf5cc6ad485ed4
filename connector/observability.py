"""Metrics, health and the HTTP endpoint that serves them (HTTP_PORT).

`Metrics` holds the Prometheus instruments (prometheus-client, its own registry);
`Health` answers the probes from timestamps the runner keeps:

- /healthz (liveness): the loop has made progress — a poll, a checkpoint, a retry
  attempt — within `stuck_after_s`; a replica waiting out a database outage is alive.
- /readyz (readiness): partitions are assigned and the last checkpoint (an empty one
  counts: nothing was waiting) completed within `stale_after_s`.

`serve()` runs a small threaded HTTP server for /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RecordMetrics:
    """What happened to records: read, written, dead-lettered, skipped by the broker."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.consumed = Counter("eos_records_consumed", "Records read from Kafka", registry=r)
        self.written = Counter("eos_records_written", "Records whose effect a committed checkpoint wrote", registry=r)
        self.written_by_table = Counter("eos_table_records_written", "Records whose effect a committed "
                                        "checkpoint wrote, by the table they were routed to", ["table"], registry=r)
        self.skipped = Counter("eos_records_skipped", "Records that changed nothing by design: insert-ignore met "
                               "their key stored (or earlier in the checkpoint), or SINK_VERSION_COLUMN found a "
                               "version not older stored", registry=r)
        self.unknown_fields = Counter("eos_unknown_fields", "Values of fields no column of their table takes, "
                                      "by table and field: not written (SINK_AUTO_EVOLVE=true adds the column; a "
                                      "field SINK_FIELDS_EXCLUDE names is not counted)", ["table", "field"],
                                      registry=r)
        self.deadlettered = Counter("eos_records_deadlettered", "Records written to the dead-letter table instead "
                                    "of the sink table (ERRORS_TOLERANCE=all)", registry=r)
        self.gaps = Counter("eos_offset_gaps", "Offsets the broker skipped in an assigned partition's sequence "
                            "(transaction markers, compaction, retention): past the position the consumer read "
                            "from, so no record of them was ever readable", registry=r)
        self.deleted = Counter("eos_records_deleted_unread", "Records the broker deleted (retention, DeleteRecords) "
                               "before the pipeline read them, skipped with ON_DATA_LOSS=skip",
                               ["topic", "partition"], registry=r)


class CheckpointMetrics:
    """How checkpoints ended and how long they took; transient failures retried."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.outcomes = Counter("eos_checkpoints", "Checkpoints by outcome: committed, already-committed "
                                "(a re-commit), fenced, failed (retried), timed-out (retried)", ["outcome"],
                                registry=r)
        self.duration = Histogram("eos_checkpoint_duration_seconds", "From sealing a snapshot to discarding it",
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.commit_latency = Histogram("eos_commit_latency_seconds", "The database commit transaction",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.retries = Counter("eos_retries", "Transient failures retried (RESTART_STRATEGY)", registry=r)
        for outcome in ("committed", "already-committed", "fenced", "failed", "timed-out"):
            self.outcomes.labels(outcome)


class PartitionMetrics:
    """The partitions this replica owns: their lag, the open checkpoint, rebalances."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.lag = Gauge("eos_consumer_lag_records", "High watermark minus the database's next_offset",
                         ["topic", "partition"], registry=r)
        self.buffered_records = Gauge("eos_buffered_records", "Records in the open checkpoint", registry=r)
        self.buffered_bytes = Gauge("eos_buffered_bytes", "Key and value bytes in the open checkpoint", registry=r)
        self.assigned = Gauge("eos_assigned_partitions", "Partitions this replica owns", registry=r)
        self.rebalances = Counter("eos_rebalances", "Rebalance callbacks by kind: assigned, revoked, lost",
                                  ["kind"], registry=r)
        for kind in ("assigned", "revoked", "lost"):
            self.rebalances.labels(kind)


class Metrics:
    """A replica's metrics, served at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.records = RecordMetrics(self.registry)
        self.checkpoints = CheckpointMetrics(self.registry)
        self.partitions = PartitionMetrics(self.registry)


class Health:
    def __init__(self, stuck_after_s: float, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after_s, self.stale_after_s, self._clock = stuck_after_s, stale_after_s, clock
        now = clock()
        self.last_progress = now
        self.last_checkpoint: float | None = None
        self.assigned = 0

    def progressed(self) -> None:
        self.last_progress = self._clock()

    def checkpointed(self) -> None:
        self.last_checkpoint = self.last_progress = self._clock()

    def live(self) -> tuple[bool, str]:
        idle = self._clock() - self.last_progress
        if idle > self.stuck_after_s:
            return False, f"no progress for {idle:.0f}s (limit {self.stuck_after_s:.0f}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.assigned == 0:
            return False, "no partitions assigned"
        if self.last_checkpoint is None:
            return False, "no checkpoint completed yet"
        age = self._clock() - self.last_checkpoint
        if age > self.stale_after_s:
            return False, f"last checkpoint {age:.0f}s ago (limit {self.stale_after_s:.0f}s)"
        return True, f"{self.assigned} partition(s), last checkpoint {age:.1f}s ago"


class Progress:
    """The backlog progress line: at most every `every_s` while there is lag, the rate
    of records written since the last line, the lag and the time left at that rate."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.written = 0  # records written (committed) so far; the runner adds to it
        self._at: float | None = None
        self._written_at = 0

    def line(self, now: float, lag: int) -> str | None:
        if self._at is None or lag <= 0:  # start measuring when a backlog appears
            self._at, self._written_at = now, self.written
            return None
        elapsed = now - self._at
        if elapsed < self.every_s:
            return None
        rate = (self.written - self._written_at) / elapsed
        self._at, self._written_at = now, self.written
        eta = f"{lag / rate:.0f}s" if rate > 0 else "unknown (nothing written)"
        return f"progress: {rate:.0f} records/s written over the last {elapsed:.0f}s, lag {lag} records, ETA {eta}"


def serve(host: str, port: int, metrics: Metrics, health: Health) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz on a daemon thread; returns the server
    (`server.server_address` holds the bound port when `port` is 0)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = health.live() if path == "/healthz" else health.ready()
                self._reply(200 if ok else 503, (detail + "\n").encode())
            else:
                self._reply(404, b"not found: /metrics, /healthz, /readyz\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("serving /metrics, /healthz and /readyz on %s:%d", host, server.server_address[1])
    return server

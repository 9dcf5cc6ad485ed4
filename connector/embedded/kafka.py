"""An in-process Kafka-protocol cluster: the mock cluster compiled into librdkafka.

The librdkafka shipped inside the confluent-kafka wheel exports its mock-cluster API;
this module reaches it through ctypes. The cluster speaks the Kafka protocol on
loopback ports (produce, fetch, consumer groups, offset commits), so other processes
connect to `bootstrap_servers` like to any broker. It lives as long as this object.

Limits (DESIGN.md): each partition keeps at most 5 MiB / 100 000 producer batches and
silently deletes older ones, so spread large runs over enough partitions.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import confluent_kafka

# Kafka protocol API keys, for inject_errors().
API_KEYS = {"Produce": 0, "Fetch": 1, "ListOffsets": 2, "Metadata": 3, "OffsetCommit": 8,
            "OffsetFetch": 9, "FindCoordinator": 10, "JoinGroup": 11, "Heartbeat": 12,
            "LeaveGroup": 13, "SyncGroup": 14}


def _library() -> ctypes.CDLL:
    libdir = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir, "confluent_kafka.libs")
    candidates = glob.glob(os.path.join(libdir, "librdkafka*.so*"))
    if not candidates:
        raise RuntimeError(f"no librdkafka shared object found under {os.path.abspath(libdir)}")
    lib = ctypes.CDLL(candidates[0])
    vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "rd_kafka_conf_new": (vp, []),
        "rd_kafka_conf_set": (ctypes.c_int, [vp, cp, cp, cp, ctypes.c_size_t]),
        "rd_kafka_new": (vp, [ctypes.c_int, vp, cp, ctypes.c_size_t]),
        "rd_kafka_destroy": (None, [vp]),
        "rd_kafka_mock_cluster_new": (vp, [vp, ctypes.c_int]),
        "rd_kafka_mock_cluster_destroy": (None, [vp]),
        "rd_kafka_mock_cluster_bootstraps": (cp, [vp]),
        "rd_kafka_mock_topic_create": (ctypes.c_int, [vp, cp, ctypes.c_int, ctypes.c_int]),
        "rd_kafka_mock_broker_set_down": (ctypes.c_int, [vp, i32]),
        "rd_kafka_mock_broker_set_up": (ctypes.c_int, [vp, i32]),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": (None, [vp, i32]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class EmbeddedKafka:
    """A mock Kafka cluster of `brokers` brokers; `start()` (or `with`) brings it up."""

    supports_request_errors = True

    def __init__(self, brokers: int = 3) -> None:
        self.brokers = brokers
        self._lib: ctypes.CDLL | None = None
        self._rk: int | None = None
        self._cluster: int | None = None
        self.bootstrap_servers = ""

    def start(self) -> EmbeddedKafka:
        lib = self._lib = _library()
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, len(errstr))
        self._rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))  # 0: RD_KAFKA_PRODUCER
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._rk, self.brokers)
        if not self._cluster:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.bootstrap_servers = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 0)
        return self

    def create_topic(self, name: str, partitions: int, replication_factor: int = 1) -> None:
        err = self._call("rd_kafka_mock_topic_create", name.encode(), partitions, replication_factor)
        if err:
            raise RuntimeError(f"creating topic {name!r} failed: {confluent_kafka.KafkaError(err).str()}")

    def broker_down(self, broker_id: int) -> None:
        self._call("rd_kafka_mock_broker_set_down", broker_id)

    def broker_up(self, broker_id: int) -> None:
        self._call("rd_kafka_mock_broker_set_up", broker_id)

    def inject_errors(self, api: str, errors: list[int]) -> None:
        """The next `len(errors)` requests of `api` fail with these error codes."""
        if api not in API_KEYS:
            raise ValueError(f"unknown API {api!r}; one of {', '.join(API_KEYS)}")
        if self._lib is None or self._cluster is None:
            raise RuntimeError("the embedded Kafka cluster is not started")
        fn = self._lib.rd_kafka_mock_push_request_errors  # variadic: no argtypes
        fn(ctypes.c_void_p(self._cluster), ctypes.c_int16(API_KEYS[api]), ctypes.c_size_t(len(errors)),
           *(ctypes.c_int(e) for e in errors))

    def _call(self, name: str, *args: Any) -> Any:
        if self._lib is None or self._cluster is None:
            raise RuntimeError("the embedded Kafka cluster is not started")
        return getattr(self._lib, name)(self._cluster, *args)

    def stop(self) -> None:
        if self._lib is not None and self._cluster is not None:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._lib.rd_kafka_destroy(self._rk)
        self._cluster = self._rk = None

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

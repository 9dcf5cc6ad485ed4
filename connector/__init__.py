"""eos-connector: an exactly-once Kafka to PostgreSQL sidecar."""

__version__ = "0.1.0"

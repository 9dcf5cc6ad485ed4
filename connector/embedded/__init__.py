"""Throwaway backends for the demo and the tests: a Kafka-protocol cluster and PostgreSQL."""

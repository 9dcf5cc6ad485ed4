"""The source's Kafka offset commits only move forward (Kafka's committed offset serves lag
monitoring and a first start; the database stays the source of truth)."""

from confluent_kafka import KafkaError, TopicPartition

from connector.source import KafkaSource


class RecordingConsumer:
    def __init__(self):
        self.commits = []

    def commit(self, offsets, asynchronous):
        self.commits.append({(p.topic, p.partition): p.offset for p in offsets})


def test_a_failed_commit_is_not_retried_once_a_newer_one_was_sent():
    source = KafkaSource({}, ["t"])
    consumer = source._consumer = RecordingConsumer()
    source.commit_offsets({("t", 0): 5, ("t", 1): 3})
    source.commit_offsets({("t", 0): 9})
    source._on_commit(KafkaError(KafkaError._TIMED_OUT), [TopicPartition("t", 0, 5), TopicPartition("t", 1, 3)])
    source.commit_offsets({})  # the next checkpoint had nothing new
    assert consumer.commits == [{("t", 0): 5, ("t", 1): 3}, {("t", 0): 9}, {("t", 1): 3}]

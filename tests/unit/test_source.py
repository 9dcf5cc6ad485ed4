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


def test_every_partition_is_given_its_start_so_a_reset_means_records_deleted():
    """librdkafka's own reset is `error` underneath: each assigned partition gets an
    explicit start (the database's offset, the group's, then KAFKA_AUTO_OFFSET_RESET),
    so the reset fires only for an offset the broker no longer has."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    class Listener:
        def on_assigned(self, partitions):
            return {("t", 0): 42, ("t", 1): None, ("t", 2): None}

    class Consumer:
        def committed(self, partitions, timeout):
            return [TopicPartition(p.topic, p.partition, 7 if p.partition == 1 else -1001) for p in partitions]

        def assign(self, partitions):
            self.assigned = {p.partition: p.offset for p in partitions}

    for reset, new_start in (("earliest", OFFSET_BEGINNING), ("latest", OFFSET_END)):
        source = KafkaSource({"auto.offset.reset": reset}, ["t"])
        assert source._config["auto.offset.reset"] == "error" and source._config["enable.partition.eof"] == "true"
        source._listener, consumer = Listener(), Consumer()
        source._assign(consumer, [TopicPartition("t", p) for p in range(3)])
        source._raise_failure()
        assert consumer.assigned == {0: 42, 1: 7, 2: new_start}

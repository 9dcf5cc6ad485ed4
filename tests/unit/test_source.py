"""The source's Kafka offset commits only move forward (Kafka's committed offset serves lag
monitoring and a first start; the database stays the source of truth)."""

from confluent_kafka import KafkaError, TopicPartition

from connector.kafka.offsets import OffsetCommits
from connector.kafka.source import KafkaSource


class RecordingConsumer:
    def __init__(self):
        self.commits = []

    def commit(self, offsets, asynchronous):
        self.commits.append({(p.topic, p.partition): p.offset for p in offsets})


def test_a_failed_commit_is_not_retried_once_a_newer_one_was_sent():
    commits, consumer = OffsetCommits(), RecordingConsumer()
    commits.send(consumer, {("t", 0): 5, ("t", 1): 3})
    commits.send(consumer, {("t", 0): 9})
    commits.on_commit(KafkaError(KafkaError._TIMED_OUT), [TopicPartition("t", 0, 5), TopicPartition("t", 1, 3)])
    commits.send(consumer, {})  # the next checkpoint had nothing new
    assert consumer.commits == [{("t", 0): 5, ("t", 1): 3}, {("t", 0): 9}, {("t", 1): 3}]


def test_a_reset_without_an_offset_starts_the_partition_one_with_an_offset_is_data_loss():
    """librdkafka's own reset is `error` underneath. Its event without an offset (no
    offset in the database nor the group) starts the partition where
    KAFKA_AUTO_OFFSET_RESET says; one with an offset the broker no longer has is records
    deleted before they were read: ON_DATA_LOSS=fail raises naming them."""
    import pytest
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    from connector.errors import RecordsDeleted

    class Reset:
        def __init__(self, offset):
            self._offset = offset

        def error(self):
            return KafkaError(KafkaError._AUTO_OFFSET_RESET)

        def topic(self):
            return "t"

        def partition(self):
            return 0

        def offset(self):
            return self._offset

    class Consumer:
        def assignment(self):
            return [TopicPartition("t", 0)]

        def position(self, partitions):
            return [TopicPartition("t", 0, -1001)]

        def assign(self, partitions):
            self.assigned = {p.partition: p.offset for p in partitions}

        def get_watermark_offsets(self, tp, timeout):
            return 50, 100

    for reset, new_start in (("earliest", OFFSET_BEGINNING), ("latest", OFFSET_END)):
        source = KafkaSource({"auto.offset.reset": reset}, ["t"])
        assert source._config["auto.offset.reset"] == "error" and source._config["enable.partition.eof"] == "true"
        consumer = source._consumer = Consumer()
        source._starts = {("t", 0): -1001}
        assert source._is_error(Reset(None)) and consumer.assigned == {0: new_start}
    with pytest.raises(RecordsDeleted, match=r"t\[0\]: records 10\.\.49 \(40\) were deleted by the broker"):
        source._is_error(Reset(10))
    with pytest.raises(RecordsDeleted, match=r"t\[0\]: records 0\.\.49 \(50\) were deleted by the broker"):
        source._is_error(Reset(0))  # offset 0 is an offset, not "none"


def test_a_partition_without_a_database_offset_starts_at_the_groups_then_at_the_reset():
    """Assignment gives each partition its start: the database's offset, else the
    group's committed offset, else KAFKA_AUTO_OFFSET_RESET's; if the coordinator does
    not answer, librdkafka looks the group's offset up itself."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, KafkaException

    class Listener:
        def on_assigned(self, partitions):
            return {("t", 0): 42, ("t", 1): None, ("t", 2): None}

    class Consumer:
        def __init__(self, answers):
            self.answers = answers

        def committed(self, partitions, timeout):
            if not self.answers:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
            return [TopicPartition(p.topic, p.partition, 7 if p.partition == 1 else -1001) for p in partitions]

        def assign(self, partitions):
            self.assigned = {p.partition: p.offset for p in partitions}

    for answers, expected in ((True, {0: 42, 1: 7, 2: OFFSET_BEGINNING}),
                              (False, {0: 42, 1: OFFSET_INVALID, 2: OFFSET_INVALID})):
        source, consumer = KafkaSource({}, ["t"]), Consumer(answers)
        source._listener = Listener()
        source._assign(consumer, [TopicPartition("t", p) for p in range(3)])
        source._raise_failure()
        assert consumer.assigned == expected

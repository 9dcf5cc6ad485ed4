"""The source's Kafka offset commits only move forward (Kafka's committed offset serves lag
monitoring and a first start; the database stays the source of truth)."""

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connector.errors import RecordsDeleted
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


class Librdkafka:
    """A stand-in for librdkafka's consumer, handed to KafkaSource: it records what the
    source asks of it, and plays rebalances and messages the way librdkafka delivers them."""

    def __init__(self, committed=-1001, answers=True):
        self.config, self.messages, self.assigned = {}, [], {}
        self._committed, self._answers = committed, answers

    def __call__(self, config):
        self.config = config
        return self

    def subscribe(self, topics, on_assign, on_revoke, on_lost):
        self.on_assign = on_assign

    def rebalance(self, *partitions):
        self.on_assign(self, [TopicPartition("t", p) for p in partitions])

    def consume(self, max_records, timeout):
        messages, self.messages = self.messages, []
        return messages

    def committed(self, partitions, timeout):
        if not self._answers:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [TopicPartition(p.topic, p.partition, self._committed if p.partition == 1 else -1001)
                for p in partitions]

    def assignment(self):
        return [TopicPartition("t", p) for p in self.assigned]

    def position(self, partitions):
        return [TopicPartition(p.topic, p.partition, -1001) for p in partitions]

    def assign(self, partitions):
        self.assigned = {p.partition: p.offset for p in partitions}

    def get_watermark_offsets(self, tp, timeout):
        return 50, 100


class Listener:
    def __init__(self, starts):
        self.starts = starts

    def on_assigned(self, partitions):
        return {tp: self.starts.get(tp) for tp in partitions}


def reset_at(offset):
    """librdkafka's reset event for t[0]: no offset (None), or one the broker no longer has."""
    return Message(topic="t", partition=0, offset=-1001 if offset is None else offset,
                   error=KafkaError(KafkaError._AUTO_OFFSET_RESET))


def test_a_reset_without_an_offset_starts_the_partition_one_with_an_offset_is_data_loss():
    """librdkafka's own reset is `error` underneath. Its event without an offset (no
    offset in the database nor the group) starts the partition where
    KAFKA_AUTO_OFFSET_RESET says; one with an offset the broker no longer has is records
    deleted before they were read: ON_DATA_LOSS=fail raises naming them."""
    for reset, new_start in (("earliest", OFFSET_BEGINNING), ("latest", OFFSET_END)):
        kafka = Librdkafka()
        source = KafkaSource({"auto.offset.reset": reset}, ["t"], consumer=kafka)
        source.start(Listener({}))
        assert kafka.config["auto.offset.reset"] == "error" and kafka.config["enable.partition.eof"] == "true"
        kafka.rebalance(0)
        kafka.messages = [reset_at(None)]
        assert source.poll(10, 0) == [] and kafka.assigned == {0: new_start}
    kafka.messages = [reset_at(10)]
    with pytest.raises(RecordsDeleted, match=r"t\[0\]: records 10\.\.49 \(40\) were deleted by the broker"):
        source.poll(10, 0)
    kafka.messages = [reset_at(0)]  # offset 0 is an offset, not "none"
    with pytest.raises(RecordsDeleted, match=r"t\[0\]: records 0\.\.49 \(50\) were deleted by the broker"):
        source.poll(10, 0)


def test_a_partition_without_a_database_offset_starts_at_the_groups_then_at_the_reset():
    """Assignment gives each partition its start: the database's offset, else the
    group's committed offset, else KAFKA_AUTO_OFFSET_RESET's; if the coordinator does
    not answer, librdkafka looks the group's offset up itself."""
    for answers, expected in ((True, {0: 42, 1: 7, 2: OFFSET_BEGINNING}),
                              (False, {0: 42, 1: OFFSET_INVALID, 2: OFFSET_INVALID})):
        kafka = Librdkafka(committed=7, answers=answers)
        source = KafkaSource({}, ["t"], consumer=kafka)
        source.start(Listener({("t", 0): 42}))
        kafka.rebalance(0, 1, 2)
        source.poll(10, 0)  # raises what the callback raised, if anything
        assert kafka.assigned == expected


class CooperativeLibrdkafka(Librdkafka):
    """librdkafka under an incremental protocol: records the calls the source makes in
    its rebalance callbacks, in order."""

    def __init__(self, failing=None):
        super().__init__()
        self.calls, self._failing = [], failing

    def subscribe(self, topics, on_assign, on_revoke, on_lost):
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def revoke(self, *partitions):
        self.on_revoke(self, [TopicPartition("t", p) for p in partitions])

    def incremental_assign(self, partitions):
        self.calls.append(("incremental_assign", sorted(p.partition for p in partitions)))
        self.assigned.update({p.partition: p.offset for p in partitions})

    def incremental_unassign(self, partitions):
        self.calls.append(("incremental_unassign", sorted(p.partition for p in partitions)))
        for p in partitions:
            del self.assigned[p.partition]

    def assignment(self):
        self.calls.append(("assignment", sorted(self.assigned)))
        if self._failing == "assignment":  # as while the consumer closes
            raise KafkaException(KafkaError(KafkaError._DESTROY))
        return super().assignment()

    def offsets_for_times(self, partitions, timeout):
        self.calls.append(("offsets_for_times", sorted(p.partition for p in partitions)))
        if self._failing == "offsets_for_times":
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return partitions


class Revoking(Listener):
    def on_revoked(self, partitions):
        pass


@pytest.mark.parametrize("failing", [None, "assignment", "offsets_for_times"])
def test_an_incremental_rebalance_wakes_the_fetchers_of_the_partitions_kept(failing):
    """librdkafka resumes the partitions an incremental rebalance paused without waking
    their brokers' fetchers (which then sleep up to 1 s): after its incremental assign or
    unassign the source waits for the resume (`assignment()`, served after it) and sends
    one request to the leaders of every partition it keeps. A failed wake-up only costs
    that second; the replica goes on (also when the consumer is closing)."""
    kafka = CooperativeLibrdkafka(failing)
    source = KafkaSource({"partition.assignment.strategy": "cooperative-sticky"}, ["t"], consumer=kafka)
    source.start(Revoking({("t", p): 10 for p in range(3)}))
    kafka.rebalance(0, 1, 2)
    kafka.revoke(1)
    source.poll(10, 0)  # raises what a callback raised, if anything
    woken = [] if failing == "assignment" else [("offsets_for_times", [0, 1, 2])]
    woken_again = [] if failing == "assignment" else [("offsets_for_times", [0, 2])]
    assert kafka.calls == [("incremental_assign", [0, 1, 2]), ("assignment", [0, 1, 2]), *woken,
                           ("incremental_unassign", [1]), ("assignment", [0, 2]), *woken_again]

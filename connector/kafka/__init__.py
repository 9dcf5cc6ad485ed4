"""Everything that talks to Kafka: the source (consumer, rebalance callbacks, seeks,
offset commits), the admin helper (partitions, watermarks, committed offsets, offsets
for times), the dead-letter producer, and the client configurations they use."""

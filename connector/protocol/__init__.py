"""The protocol, pure: operator state and runs, the checkpoint in flight as a state
machine, the coordinator and its steps, the trigger policy and the fault hook. Time is
passed in; nothing here imports threading, time, Kafka's client or the database driver
(tests/unit/test_purity.py checks it)."""

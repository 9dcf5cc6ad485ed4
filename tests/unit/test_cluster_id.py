"""KRaft cluster IDs the launcher makes are ones Kafka's storage tool accepts: 22
base64url characters, never a leading `-` (read as an option: the format fails)."""

import re

from connector.embedded.apache import new_cluster_id


def test_cluster_ids_never_start_with_a_dash():
    found = [new_cluster_id() for _ in range(5000)]  # a 1-in-64 chance each, were it not excluded
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cid) for cid in found)
    assert len(set(found)) == len(found)

"""NewKeys, the policy for trying upsert batches as plain COPY: after a failed try the
next ones wait 1, 2, 4 … 64 batches; a try that inserts resets the wait."""

import itertools

from connector.sink.new_keys import NewKeys


def test_waits_double_up_to_the_maximum_and_reset_on_success():
    new_keys = NewKeys()
    tries = []
    for _ in range(300):
        tries.append(new_keys.worth_trying())
        if tries[-1]:
            new_keys.result(False)
    starts = [i for i, t in enumerate(tries) if t]
    gaps = [b - a - 1 for a, b in itertools.pairwise(starts)]
    assert gaps[:8] == [1, 2, 4, 8, 16, 32, 64, 64]
    while not new_keys.worth_trying():
        pass
    new_keys.result(True)  # that try inserted: keep trying, and a failure waits 1 again
    assert new_keys.worth_trying()
    new_keys.result(False)
    assert [new_keys.worth_trying() for _ in range(2)] == [False, True]

"""Whether an upsert batch is first tried as a plain insert (sink/writer.py)."""

from __future__ import annotations


class NewKeys:
    """Whether an upsert batch is first tried as a plain COPY into the table. While a
    stream's keys are new (events keyed by a fresh ID, say), an upsert is an insert, and
    COPY skips the stage table and the merge. A batch that meets a stored key is rolled
    back to its savepoint and merged as usual; the next tries wait 1, 2, 4 … 64 batches,
    so a stream of updates pays for a failed try once in 64 batches at most."""

    MAX_WAIT = 64

    def __init__(self) -> None:
        self._skip = 0
        self._wait = 1

    def worth_trying(self) -> bool:
        if self._skip:
            self._skip -= 1
            return False
        return True

    def result(self, inserted: bool, lasting: bool = False) -> None:
        if inserted:
            self._wait = 1
        else:
            self._skip, self._wait = (self.MAX_WAIT if lasting else self._wait), min(self._wait * 2, self.MAX_WAIT)

"""Offsets a partition cannot be read from: where one with no offset anywhere starts
(KAFKA_AUTO_OFFSET_RESET), and what records the broker deleted before they were read do
(ON_DATA_LOSS: `fail` stops naming them, `skip` goes on from the earliest offset kept)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from connector.errors import RecordsDeleted

log = logging.getLogger(__name__)
DataLoss = Literal["fail", "skip"]


@dataclass(frozen=True)
class Resets:
    new_start: int  # librdkafka's logical offset for the beginning or the end
    on_data_loss: DataLoss

    def records_deleted(self, where: str, needed: int, low: int, high: int, detail: str) -> int:
        """The partition `where` was to be read from `needed`, which the broker (keeping
        [low, high)) no longer has: how many records were lost, going on from `low`
        (ON_DATA_LOSS=skip), or RecordsDeleted naming them."""
        if needed > high:  # a truncated log or a recreated topic: rows past it are already written
            raise RecordsDeleted(f"{where}: the pipeline's next offset {needed} is past the broker's last offset "
                                 f"{high} (the log was truncated, or the topic deleted and created again); "
                                 "nothing was skipped. Move the pipeline with `eos-connector offsets reset` "
                                 "if this is intended")
        lost = low - needed
        if self.on_data_loss == "fail":
            raise RecordsDeleted(f"{where}: records {needed}..{low - 1} ({lost}) were deleted by the broker "
                                 f"(retention or DeleteRecords) before the pipeline read them; the earliest "
                                 f"offset kept is {low}. Nothing was skipped: set ON_DATA_LOSS=skip to go on from "
                                 f"offset {low}, or move the pipeline with `eos-connector offsets reset` ({detail})")
        log.warning("%s: records %d..%d (%d) were deleted by the broker before the pipeline read them; going on "
                    "from offset %d (ON_DATA_LOSS=skip)", where, needed, low - 1, lost, low)
        return lost

"""The bookkeeping schema: its tables (shared with Alembic) and the repository of the
small queries a replica runs on them (offsets, snapshot rows, heartbeat and operator
requests, dead letters to forward, savepoint seeding)."""

from connector.bookkeeping.tables import (
                                          checkpoint_ids,
                                          checkpoints,
                                          deadletters,
                                          metadata,
                                          offsets,
                                          replicas,
                                          requests,
                                          savepoints,
                                          snapshots,
                                          translate,
)

__all__ = ["checkpoint_ids", "checkpoints", "deadletters", "metadata", "offsets", "replicas", "requests",
           "savepoints", "snapshots", "translate"]

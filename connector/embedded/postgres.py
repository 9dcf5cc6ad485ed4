"""A throwaway PostgreSQL server from the `pgserver` package (a real server binary).

It listens on a Unix socket inside its data directory; that path must stay short
(under ~100 bytes), so the directory is made under /tmp unless told otherwise.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from typing import Any


class EmbeddedPostgres:
    """A PostgreSQL server in a temporary directory, removed by `stop()`."""

    def __init__(self, directory: str | None = None) -> None:
        self._owned = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="eospg", dir="/tmp")
        self._server: Any = None

    def start(self) -> EmbeddedPostgres:
        with warnings.catch_warnings():  # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            try:
                import pgserver
            except ImportError as exc:  # an optional dependency: name the fix
                raise RuntimeError("the embedded PostgreSQL needs `pip install pgserver`") from exc
            self._server = pgserver.get_server(self.directory, cleanup_mode="stop")  # type: ignore[attr-defined]
        return self

    def restart(self) -> None:
        """Restart the server in fast mode: every session is cut, as in a failover."""
        import pgserver

        server = self._server
        pg_ctl = pgserver.pg_ctl  # type: ignore[attr-defined]  # exported, not in __all__
        pg_ctl(["-w", "-m", "fast", "-l", str(server.log), "restart"], pgdata=server.pgdata,
               user=server.system_user, timeout=60)

    @property
    def url(self) -> str:
        """A libpq URL (`postgresql://postgres:@/postgres?host=/socket/dir`)."""
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

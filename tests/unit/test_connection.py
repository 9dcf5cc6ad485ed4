"""The database connection notices a dead peer in about half a minute (TCP keepalives and a
bound on unacknowledged data), unless DATABASE_URL chooses otherwise."""

import pytest

from connector.sink import connection


@pytest.mark.parametrize("url, expected", [
    ("postgresql://db/app", {"keepalives": "1", "keepalives_idle": "10", "tcp_user_timeout": "30000"}),
    ("postgresql://db/app?tcp_user_timeout=5000&keepalives_idle=60", {"keepalives": "1"}),
])
def test_liveness_options_unless_the_url_sets_them(monkeypatch, url, expected):
    seen = {}
    monkeypatch.setattr(connection.psycopg, "connect", lambda dsn, **options: seen.update(options) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        connection.engine_for(url).connect()
    assert expected.items() <= seen.items()
    for name in ("tcp_user_timeout", "keepalives_idle"):
        assert (name in seen) == (name not in url)

"""Known secrets given every way the connector takes them never appear in any output:
a run that lands rows, a run that stops on an error, a run with bad settings, `check`,
`status`, `migrate`, `deadletters` and `--help`."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import orjson
import pytest

pytestmark = pytest.mark.integration
# Passwords as people have them: reserved URL characters, an ampersand, a percent sign.
SECRETS = {"db-file": "Db&Secret-0451", "sasl-file": "Sasl-Secret-9923", "ssl-key": "Key-Secret-7710",
           "url": "Url/Se?cr#et%3318", "sslpassword": "Ssl&Pass-2207", "raw-url": "Raw/Pass?w#rd-6604",
           "bad-token": "pa%zz-Secret-5150"}


def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "connector", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=90)
    return done.returncode, done.stdout + done.stderr


def test_no_secret_in_any_output(make_pipeline, tmp_path):
    p = make_pipeline("CREATE TABLE {table} (event_id bigint NOT NULL)")
    (tmp_path / "db-password").write_text(SECRETS["db-file"] + "\n")
    (tmp_path / "sasl-password").write_text(SECRETS["sasl-file"])
    url = p.services.database_url
    # The embedded and containerized servers trust local connections: any password logs in.
    encoded = quote(SECRETS["url"], safe="")
    url = url.replace("postgres:@", f"postgres:{encoded}@").replace("postgres@", f"postgres:{encoded}@")
    url += ("&" if "?" in url else "?") + f"sslpassword={quote(SECRETS['sslpassword'], safe='')}"
    secrets_env = {"DATABASE_URL": url, "DATABASE_PASSWORD_FILE": str(tmp_path / "db-password"),
                   "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "sasl-password"),
                   "KAFKA_SSL_KEY_PASSWORD": SECRETS["ssl-key"]}
    p.produce([(None, orjson.dumps({"event_id": i})) for i in range(50)])
    outputs = []

    replica = p.start(**secrets_env, LOG_LEVEL="DEBUG")
    p.wait_for_rows(50, 60, replica)
    assert replica.stop() == 0
    outputs.append(replica.output())
    p.assert_exact(50)

    failing = p.start(**secrets_env, SINK_TABLE="no_such_table")  # stops with an error and traceback-free message
    assert failing.wait(60) == 1
    outputs.append(failing.output())

    env = p.env(**secrets_env)
    for args, overrides, expected in [(("check",), {}, 0), (("status",), {}, 0), (("status", "--json"), {}, 0),
                                      (("migrate",), {}, 0), (("--help",), {}, 0), (("run", "--help"), {}, 0),
                                      (("deadletters", "list"), {}, 0), (("deadletters", "replay"), {}, 0),
                                      (("run",), {"SINK_MODE": "merge"}, 2), (("check",), {"KAFKA_TOPICS": "nope"}, 2),
                                      # a password with reserved characters left unencoded, and one libpq cannot parse
                                      (("check",), {"DATABASE_URL": f"postgresql://u:{SECRETS['raw-url']}@localhost:1/x"}, 2),
                                      (("check",), {"DATABASE_URL": f"postgresql://u:{SECRETS['bad-token']}@db/x"}, 2)]:
        code, out = cli({**env, **overrides}, *args)
        assert code == expected, out
        outputs.append(out)
    everything = "\n".join(outputs)
    assert "stopped: TableMissing" in everything and "ok    database" in everything  # the outputs are real
    for name, secret in SECRETS.items():
        assert secret not in everything, f"the {name} secret appears in an output"

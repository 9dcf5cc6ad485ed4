"""The protocol is pure: its modules import neither the Kafka client nor the driver."""

import subprocess
import sys

PURE = ["connector.state", "connector.runs", "connector.checkpoint", "connector.faults", "connector.sink.mapping",
        "connector.sink.statements", "connector.sink.upserts", "connector.sink.fastpath", "connector.backends.codec"]


def test_pure_modules_import_no_io_library():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE)
            + "print(','.join(m for m in ('confluent_kafka', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

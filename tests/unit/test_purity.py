"""The protocol is pure: its modules import neither the Kafka client nor the driver,
and the protocol package takes no time and starts no thread of its own (time is passed
in; the commit worker is handed in)."""

import ast
import pathlib
import subprocess
import sys

import connector

PROTOCOL = sorted(p.stem for p in pathlib.Path(connector.__file__).parent.joinpath("protocol").glob("*.py")
                  if p.stem != "__init__")
PURE = ["connector.models", *(f"connector.protocol.{m}" for m in PROTOCOL), "connector.sink.mapping",
        "connector.sink.statements", "connector.sink.upserts", "connector.sink.fastpath", "connector.backends.codec"]
IO = ("confluent_kafka", "psycopg")
NOT_IN_THE_PROTOCOL = ("threading", "time", "concurrent", "asyncio", "sqlalchemy", *IO)


def test_pure_modules_import_no_io_library():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE)
            + f"print(','.join(m for m in {IO!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def imported(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_protocol_takes_no_time_and_starts_no_thread():
    assert len(PROTOCOL) >= 6
    package = pathlib.Path(connector.__file__).parent / "protocol"
    found = {m: imported(package / f"{m}.py") & set(NOT_IN_THE_PROTOCOL) for m in PROTOCOL}
    assert found == {m: set() for m in PROTOCOL}

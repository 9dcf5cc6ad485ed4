"""The embedded Kafka-protocol cluster as a standalone service, with an HTTP control API.

`python -m connector.embedded.kafka_control --port 19092 --brokers 3` starts a cluster
and serves, on 127.0.0.1:<port>:

    GET  /bootstrap                       the cluster's bootstrap servers
    POST /topics/<name>?partitions=N      create a topic with N partitions
    POST /brokers/<id>/down | /up         take a broker down or bring it back
    POST /errors/<api>?codes=6,7          the next requests of that API fail with these codes

The mock cluster does not answer the Kafka protocol's CreateTopics, so another process
(a test, in a container setup) creates topics through this API. `RemoteKafka` is its
client, with the same methods as `EmbeddedKafka`.
"""

from __future__ import annotations

import argparse
import re
import signal
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from connector.embedded.kafka import EmbeddedKafka

_TOPIC = re.compile(r"^/topics/([A-Za-z0-9._-]{1,249})$")
_BROKER = re.compile(r"^/brokers/(\d+)/(down|up)$")
_ERRORS = re.compile(r"^/errors/([A-Za-z]+)$")


def _handler(kafka: EmbeddedKafka) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/bootstrap":
                self._reply(200, kafka.bootstrap_servers)
            else:
                self._reply(404, "unknown path")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            try:
                if match := _TOPIC.match(url.path):
                    partitions = int(parse_qs(url.query).get("partitions", ["1"])[0])
                    kafka.create_topic(match.group(1), partitions)
                elif match := _BROKER.match(url.path):
                    broker = int(match.group(1))
                    (kafka.broker_down if match.group(2) == "down" else kafka.broker_up)(broker)
                elif match := _ERRORS.match(url.path):
                    codes = parse_qs(url.query).get("codes", [""])[0]
                    kafka.inject_errors(match.group(1), [int(c) for c in codes.split(",") if c])
                else:
                    self._reply(404, "unknown path")
                    return
            except (RuntimeError, ValueError) as exc:
                self._reply(400, str(exc))
                return
            self._reply(200, "ok")

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _exit(*_: object) -> None:
    raise SystemExit(0)


def serve(port: int, brokers: int) -> None:
    with EmbeddedKafka(brokers) as kafka:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(kafka))
        signal.signal(signal.SIGTERM, _exit)
        print(f"bootstrap.servers={kafka.bootstrap_servers}", flush=True)
        try:
            server.serve_forever()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            server.server_close()


class RemoteKafka:
    """Client of the control API: the `EmbeddedKafka` methods, over HTTP."""

    supports_request_errors = True

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url.rstrip("/")
        self.bootstrap_servers = self._call("GET", "/bootstrap")

    def create_topic(self, name: str, partitions: int) -> None:
        self._call("POST", f"/topics/{name}?partitions={partitions}")

    def broker_down(self, broker_id: int) -> None:
        self._call("POST", f"/brokers/{broker_id}/down")

    def broker_up(self, broker_id: int) -> None:
        self._call("POST", f"/brokers/{broker_id}/up")

    def inject_errors(self, api: str, errors: list[int]) -> None:
        self._call("POST", f"/errors/{api}?codes={','.join(str(e) for e in errors)}")

    def _call(self, method: str, path: str) -> str:
        request = urllib.request.Request(self.control_url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=19092)
    parser.add_argument("--brokers", type=int, default=3)
    args = parser.parse_args()
    serve(args.port, args.brokers)


if __name__ == "__main__":
    main()

"""Secrets found in the settings as given are masked in every line written: parsed from
connection strings libpq accepts and read from the text of those it refuses."""

import io
import logging

import pytest

from connector import redaction
from connector.environment import redact_url


@pytest.mark.parametrize("url, secret", [
    ("postgresql://app:Pa%26ss%2Fw0rd@db/app", "Pa&ss/w0rd"),  # percent-encoded: found decoded
    ("postgresql://app:Pa/ss?w#rd@db/app", "Pa/ss?w#rd"),  # reserved characters left unencoded
    ("postgresql://app@db/app?sslpassword=Ssl%26Key1", "Ssl&Key1"),
    ("host=db user=app password='with space&amp' sslpassword=KeyPass9", "with space&amp"),
    ("host=db sslpassword=KeyPass9", "KeyPass9"),
    ("postgresql://app:pa%zz-Secret@db/app", "pa%zz-Secret"),  # libpq cannot parse it
])
def test_every_password_of_a_connection_string_is_found_and_masked(url, secret):
    found = redaction.url_secrets(url)
    redaction.remember(found)
    assert secret in found
    assert secret not in redaction.redact(f"connection to {url} failed: token \"{secret}\"")
    assert secret not in redact_url(url)


def test_log_records_and_streams_are_masked():
    redaction.remember({"Kafka-Sasl-9923"})
    stream = io.StringIO()
    handler = logging.StreamHandler(redaction.RedactingStream(stream))
    handler.addFilter(redaction.RedactingFilter())
    logger = logging.getLogger("test-redaction")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("login with Kafka-Sasl-9923 refused")
        except ValueError:
            logger.error("failed: %s", "Kafka-Sasl-9923", exc_info=True)
    finally:
        logger.removeHandler(handler)
    assert "Kafka-Sasl-9923" not in stream.getvalue() and "failed: ***" in stream.getvalue()
    assert "ValueError: login with *** refused" in stream.getvalue()

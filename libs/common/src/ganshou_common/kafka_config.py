"""Kafka connection security from the environment, for every client (producer, consumer,
admin, faust): plaintext locally; TLS and SASL on a cluster (e.g. Strimzi).

    KAFKA_SECURITY_PROTOCOL  PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
    KAFKA_CA_FILE            the cluster CA (PEM) for SSL / SASL_SSL
    KAFKA_CERT_FILE, KAFKA_KEY_FILE   a client certificate (mutual TLS), optional
    KAFKA_SASL_MECHANISM     PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from ganshou_common.config import ConfigError, env

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=os.environ.get("KAFKA_CA_FILE") or None)
    cert, key = os.environ.get("KAFKA_CERT_FILE"), os.environ.get("KAFKA_KEY_FILE")
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


def client_kwargs() -> dict[str, Any]:
    """Keyword arguments for aiokafka's clients."""
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"environment variable KAFKA_SECURITY_PROTOCOL must be one of {PROTOCOLS}, got {protocol!r}")
    out: dict[str, Any] = {"security_protocol": protocol}
    if "SSL" in protocol:
        out["ssl_context"] = _ssl_context()
    if protocol.startswith("SASL"):
        out.update(sasl_mechanism=env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                   sasl_plain_username=env("KAFKA_SASL_USERNAME"), sasl_plain_password=env("KAFKA_SASL_PASSWORD"))
    return out


def faust_credentials() -> Any:
    """The same, as faust's broker_credentials (None for plaintext)."""
    import faust

    kw = client_kwargs()
    protocol = kw["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kw["ssl_context"])
    return faust.SASLCredentials(username=kw["sasl_plain_username"], password=kw["sasl_plain_password"],
                                 mechanism=kw["sasl_mechanism"], ssl_context=kw.get("ssl_context"))

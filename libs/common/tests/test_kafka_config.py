"""Kafka security settings from the environment."""

from __future__ import annotations

import pytest

from ganshou_common.config import ConfigError
from ganshou_common.kafka_config import client_kwargs


def test_plaintext_by_default(monkeypatch) -> None:
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    assert client_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_needs_its_credentials(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    with pytest.raises(ConfigError, match="KAFKA_SASL_USERNAME"):
        client_kwargs()
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "ganshou")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "secret")
    kw = client_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["ssl_context"] is not None


def test_an_unknown_protocol_is_named(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL"):
        client_kwargs()

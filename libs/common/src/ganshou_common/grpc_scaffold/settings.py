"""Server settings from the environment: GRPC_PORT, GRPC_GRACE_S, GRPC_MAX_CONCURRENT,
and TLS from files (GRPC_TLS_CERT, GRPC_TLS_KEY, and GRPC_TLS_CLIENT_CA for mTLS)."""

from __future__ import annotations

import os
from pathlib import Path

from ganshou_common.config import ConfigError, env_int
from ganshou_common.grpc_scaffold.server import ServerSettings


def _read(var: str) -> bytes | None:
    path = os.environ.get(var)
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"environment variable {var}: cannot read {path}: {exc}") from None


def server_settings_from_env() -> ServerSettings:
    cert, key = _read("GRPC_TLS_CERT"), _read("GRPC_TLS_KEY")
    if bool(cert) != bool(key):
        raise ConfigError("GRPC_TLS_CERT and GRPC_TLS_KEY go together")
    return ServerSettings(
        host=os.environ.get("GRPC_HOST", "0.0.0.0"),
        port=env_int("GRPC_PORT", 50051),
        # Longer than a client's usual deadline (5 s): on SIGTERM an in-flight call then
        # completes or meets its own deadline (retryable), rather than being CANCELLED.
        grace_s=float(os.environ.get("GRPC_GRACE_S", "10")),
        max_concurrent_rpcs=env_int("GRPC_MAX_CONCURRENT", 1000),
        tls_cert=cert, tls_key=key, tls_client_ca=_read("GRPC_TLS_CLIENT_CA"),
    )

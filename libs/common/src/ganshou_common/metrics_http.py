"""The Prometheus metrics endpoint every Ganshou process serves."""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics from a daemon thread (the default registry)."""
    start_http_server(port, addr=host)

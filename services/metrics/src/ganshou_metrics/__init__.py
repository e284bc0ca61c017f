"""The metrics service (see README.md and ../shared/ARCHITECTURE.md)."""

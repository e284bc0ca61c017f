"""The intake service (see README.md and ../shared/ARCHITECTURE.md)."""

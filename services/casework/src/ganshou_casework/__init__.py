"""The casework service (see README.md and ../shared/ARCHITECTURE.md)."""

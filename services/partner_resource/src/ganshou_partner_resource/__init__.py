"""The partner-resource service (see README.md and ../shared/ARCHITECTURE.md)."""

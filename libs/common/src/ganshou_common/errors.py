"""The domain errors every service raises; the gRPC layer maps each to one status code.

A small hierarchy instead of asserts: domain code raises these, nothing else is expected.
"""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base class: a rule of the domain refused the command."""


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(DomainError):
    """Bad input; carries one violation per offending field."""

    def __init__(self, violations: list[FieldViolation] | FieldViolation):
        self.violations = violations if isinstance(violations, list) else [violations]
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def field(cls, field: str, description: str) -> "InvalidArgument":
        return cls([FieldViolation(field, description)])


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    pass


class FailedPrecondition(DomainError):
    """An illegal transition, e.g. rating a case that is still open."""


class ConcurrencyConflict(DomainError):
    """The stream moved on since the caller read it (a stale expected version)."""

    def __init__(self, stream_id: str, expected: int, actual: int | None):
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        super().__init__(f"stream {stream_id}: expected version {expected}, found {actual}")


class RequestIdReused(DomainError):
    """A request id already used by a different command."""


class Unauthenticated(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class ResourceExhausted(DomainError):
    pass


class Unavailable(DomainError):
    """A dependency (database, broker) is down: the client may retry with the same request id."""

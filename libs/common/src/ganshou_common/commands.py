"""Idempotent commands: a client's request_id is recorded with the command's result in
the same transaction as its events, so a retry returns the first result and appends
nothing, and a different command reusing the id is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from ganshou_common.errors import InvalidArgument, RequestIdReused, Unavailable
from ganshou_common.eventstore.model import EventStore, RequestAlreadyRecorded, StreamVersionConflict, Transaction

Decide = Callable[[Transaction], Awaitable[bytes]]


class Runner(Protocol):
    """How a service runs its commands: each in its own transaction (`per_command`) or
    batched with others (group_commit.GroupCommitter.execute). `key` names what the
    command writes, so commands on the same streams queue behind each other."""

    def __call__(self, request_id: str, fp: str, decide: Decide, key: str = "") -> Awaitable[bytes]: ...


def per_command(store: EventStore) -> Runner:
    def run(request_id: str, fp: str, decide: Decide, key: str = "") -> Awaitable[bytes]:
        return execute(store, request_id, fp, decide)
    return run


def fingerprint(command_name: str, body: bytes) -> str:
    """Identifies a command's content, so a reused request id with other content is caught."""
    return hashlib.sha256(command_name.encode() + b"\0" + body).hexdigest()


def _replay(record_fp: str, fp: str, request_id: str, result: bytes) -> bytes:
    if record_fp != fp:
        raise RequestIdReused(f"request_id {request_id!r} was already used by a different command")
    return result


async def execute(
    store: EventStore, request_id: str, fp: str, decide: Decide, *, conflict_retries: int = 3
) -> bytes:
    """Run `decide` in one transaction and record its result under `request_id`.

    `decide` loads what it needs, appends its events and returns the serialized response.
    A version conflict re-runs it on fresh state (up to `conflict_retries` times), since
    the command was decided on a stale read; the last conflict propagates (ABORTED). A
    retry of a recorded request may run `decide` again, but only to be rolled back.
    """
    if not request_id:
        raise InvalidArgument.field("request_id", "required: a client-chosen id that makes retries safe")
    if len(request_id) > 128:
        raise InvalidArgument.field("request_id", "at most 128 characters")
    for attempt in range(conflict_retries + 1):
        try:
            # The request is not looked up first: a retry is rare, and its record's unique
            # key refuses it at the end anyway (one round trip fewer for every command).
            async with store.command() as tx:
                result = await decide(tx)
                await tx.record_request(request_id, fp, result)
            return result
        except Exception as exc:
            # Rolled back. A retry of a command that committed first ends here: its record
            # was taken, its stream moved on, its decision no longer holds (the case has
            # moved on, the name is taken) or an id it derives is in use (an import's keys):
            # answer as the first time.
            prior = await _find(store, request_id, exc)
            if prior is not None:
                return _replay(prior.fingerprint, fp, request_id, prior.result)
            if isinstance(exc, RequestAlreadyRecorded):  # cannot happen: the record was committed
                raise RuntimeError(f"request {request_id} vanished after a conflict") from exc
            if not isinstance(exc, StreamVersionConflict) or attempt == conflict_retries:
                raise
            # Decided on a stale read: decide again on fresh state.
    raise AssertionError("unreachable")


async def _find(store: EventStore, request_id: str, failure: Exception):
    """The request's record, if any; when the store cannot say (it is down), the
    command's own failure stands."""
    if isinstance(failure, Unavailable):
        return None
    try:
        return await store.find_request(request_id)
    except Exception:
        raise failure from None

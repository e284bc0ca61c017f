"""Idempotent commands: a client's request_id is recorded with the command's result in
the same transaction as its events, so a retry returns the first result and appends
nothing, and a different command reusing the id is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from ganshou_common.errors import InvalidArgument, RequestIdReused
from ganshou_common.eventstore.model import EventStore, RequestAlreadyRecorded, StreamVersionConflict, Transaction

Decide = Callable[[Transaction], Awaitable[bytes]]


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
    the command was decided on a stale read; the last conflict propagates (ABORTED).
    """
    if not request_id:
        raise InvalidArgument.field("request_id", "required: a client-chosen id that makes retries safe")
    if len(request_id) > 128:
        raise InvalidArgument.field("request_id", "at most 128 characters")
    for attempt in range(conflict_retries + 1):
        try:
            async with store.transaction() as tx:
                # Checked inside the transaction: one connection, one round trip fewer.
                prior = await tx.find_request(request_id)
                if prior is not None:
                    return _replay(prior.fingerprint, fp, request_id, prior.result)
                result = await decide(tx)
                await tx.record_request(request_id, fp, result)
            return result
        except RequestAlreadyRecorded:
            # A concurrent retry of the same request committed first: answer as it did.
            prior = await store.find_request(request_id)
            if prior is None:  # cannot happen: the conflicting row was committed
                raise RuntimeError(f"request {request_id} vanished after a conflict")
            return _replay(prior.fingerprint, fp, request_id, prior.result)
        except StreamVersionConflict:
            if attempt == conflict_retries:
                raise
    raise AssertionError("unreachable")

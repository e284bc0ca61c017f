"""A batch of source events folded into the rows it changes (no I/O).

The worker writes each changed stream's row once per batch (one changelog message) and
replaces its facts once, instead of once per event; each event of the batch then waits
for that one write before its offset counts as durable. Folding gives exactly what
applying the events one by one would (tests/test_batches.py).

Rows are kept as their compact JSON bytes, as the changelog holds them: a town's millions
of streams as Python dicts cost several times the memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from ganshou_common.consumer import PoisonMessage, decode
from ganshou_common.sense import Nonsense, checked_payload
from ganshou_metrics.domain.projection import Row, apply


def row_of(raw: bytes | None) -> Row | None:
    return json.loads(raw) if raw else None


def row_bytes(row: Row) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode()


@dataclass
class Change:
    """A stream's row before the batch and after it, and the events it covers."""

    before: Row | None
    after: Row
    last: Any  # the last event that changed it (its partition is the row's)
    covers: list[Any] = field(default_factory=list)  # every event of the batch its write makes durable


@dataclass
class Folded:
    changes: dict[str, Change] = field(default_factory=dict)
    applied: int = 0
    # Seen before (a redelivery), stream not changed by this batch: durable once the
    # stream's last write already sent is.
    seen_before: list[tuple[Any, str]] = field(default_factory=list)
    rejected: list[tuple[Any, str, str]] = field(default_factory=list)  # (event, reason, detail)


def fold(events: Iterable[tuple[Any, bytes | None]], stored: Callable[[str], Row | None]) -> Folded:
    """`events` as (token, value) in stream order; `stored(stream)` the row before the batch."""
    out = Folded()
    again: list[tuple[Any, str]] = []
    for token, value in events:
        try:
            env = decode(value)
            checked_payload(env)
            key = env.stream_id
            change = out.changes.get(key)
            old = change.after if change else stored(key)
            new = apply(old, env)
        except (Nonsense, PoisonMessage) as exc:
            out.rejected.append((token, exc.reason, exc.detail))
            continue
        except (DecodeError, KeyError, ValueError, TypeError) as exc:
            out.rejected.append((token, "rejected_by_projection", f"{type(exc).__name__}: {exc}"))
            continue
        if new is None:
            again.append((token, key))
            continue
        if change is None:
            out.changes[key] = change = Change(old, new, token)
        change.after, change.last = new, token
        change.covers.append(token)
        out.applied += 1
    for token, key in again:
        if key in out.changes:  # the batch's write of its row holds it too
            out.changes[key].covers.append(token)
        else:
            out.seen_before.append((token, key))
    return out

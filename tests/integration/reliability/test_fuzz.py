"""Hypothesis over every RPC of every service: requests built from the proto descriptors
with values that are often wrong (unknown enums, huge or odd text, negative numbers,
ids of other entities, timestamps out of range). Bad input never gets INTERNAL or
UNKNOWN, never crashes a server, and a refused command leaves nothing behind: no event
carries its correlation id and no request record its request id."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .rpcs import Rpc, every_rpc
from .test_authorisation import town_ids

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
INT_RANGES = {FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
              FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1)}


def text(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(known), st.just(""), st.text(max_size=40),
                     st.text(min_size=300, max_size=5000), st.from_regex(r"\A[0-9]{11,18}X?\Z"))


def scalar(f: FieldDescriptor, known: list[str]) -> st.SearchStrategy:
    match f.type:
        case FieldDescriptor.TYPE_STRING:
            return text(known)
        case FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        case FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        case FieldDescriptor.TYPE_DOUBLE | FieldDescriptor.TYPE_FLOAT:
            return st.floats(allow_nan=True, allow_infinity=True, width=32 if f.type == f.TYPE_FLOAT else 64)
        case FieldDescriptor.TYPE_ENUM:
            return st.integers(-3, max(v.number for v in f.enum_type.values) + 3)
    lo, hi = INT_RANGES.get(f.type, (-2**31, 2**31 - 1))
    return st.one_of(st.integers(lo, hi), st.integers(-3, 10))


@st.composite
def message(draw, descriptor, known: list[str], depth: int = 0) -> Message:
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(descriptor)()
    for f in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                continue
            if f.message_type.full_name == "google.protobuf.Timestamp":
                ts = (draw(st.integers(-2**40, 2**40)), draw(st.integers(-10, 10**9 + 10)))
                targets = [getattr(msg, f.name).add() for _ in range(draw(st.integers(0, 2)))] if f.is_repeated \
                    else [getattr(msg, f.name)]
                for t in targets:
                    t.seconds, t.nanos = max(min(ts[0], 2**62), -2**62), max(min(ts[1], 2**31 - 1), -2**31)
                continue
            if depth >= 2:
                continue
            if f.is_repeated:
                for _ in range(draw(st.integers(0, 3))):
                    getattr(msg, f.name).add().CopyFrom(draw(message(f.message_type, known, depth + 1)))
            else:
                getattr(msg, f.name).CopyFrom(draw(message(f.message_type, known, depth + 1)))
        elif f.is_repeated:
            getattr(msg, f.name).extend(draw(st.lists(scalar(f, known), max_size=4)))
        else:
            setattr(msg, f.name, draw(scalar(f, known)))
    return msg


def fuzz_rpc(rpc: Rpc, channel: grpc.Channel, metadata, known: list[str], examples: int, seen: dict) -> None:
    fn = rpc.callable(channel)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(message(rpc.method.input_type, known))
    def one(request: Message) -> None:
        cid = uuid.uuid4().hex
        md = (*metadata, ("x-correlation-id", cid))
        try:
            if rpc.streaming == (True, False):
                fn(iter([request]), metadata=md, timeout=10)
            elif rpc.streaming == (False, True):
                stream = fn(request, metadata=md, timeout=3)
                next(stream)
                stream.cancel()
            else:
                fn(request, metadata=md, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.CANCELLED:
                code = grpc.StatusCode.OK
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and rpc.streaming == (False, True):
                code = grpc.StatusCode.OK  # a watch with nothing new to say
            assert code not in BAD, f"{rpc.name}: {code.name} {exc.details()} for {request}"
            assert code != grpc.StatusCode.UNAVAILABLE, f"{rpc.name}: server unavailable after {request}"
        seen["codes"][code.name] = seen["codes"].get(code.name, 0) + 1
        if rpc.command and code == grpc.StatusCode.OK:
            seen["accepted"].add(request.request_id)
        elif rpc.command:
            seen["refused"].setdefault(rpc.process, []).append((cid, request.request_id))

    one()


async def test_fuzz_every_rpc(rsystem, report, soak) -> None:
    a, b, partner = await town_ids(rsystem)
    known = sorted({*a.values(), *b.values(), partner, "c-nowhere", "../../etc/passwd", "' OR 1=1 --"})
    rpcs = list(every_rpc())
    per_service = {p: sum(r.process == p for r in rpcs) for p in ("intake", "casework", "partner", "metrics")}
    target = int(os.environ.get("GANSHOU_FUZZ_CASES", 10_000 if soak else 300))  # cases per service
    seen: dict = {"codes": {}, "refused": {}, "accepted": set()}
    channels = {p: grpc.insecure_channel(f"127.0.0.1:{rsystem.procs[p].grpc_port}") for p in per_service}

    def run() -> None:
        for rpc in rpcs:
            examples = -(-target // per_service[rpc.process])
            fuzz_rpc(rpc, channels[rpc.process], rsystem.auth(), known, examples, seen)

    try:
        await asyncio.to_thread(run)
    finally:
        for ch in channels.values():
            ch.close()
    for name, p in rsystem.procs.items():
        assert p.popen.poll() is None, f"{name} died during the fuzzing"
    # A refused command left nothing: no event of its correlation id, no request record.
    half_applied = {}
    for process, refused in seen["refused"].items():
        conn = await asyncpg.connect(rsystem.procs[process].env["DATABASE_URL"])
        try:
            events = await conn.fetchval("SELECT count(*) FROM events WHERE correlation_id = ANY($1)",
                                         [c for c, _ in refused])
            requests = await conn.fetchval("SELECT count(*) FROM requests WHERE request_id = ANY($1)",
                                           [r for _, r in refused if r and "\x00" not in r and r not in seen["accepted"]])
        finally:
            await conn.close()
        half_applied[process] = events + requests
    total = sum(seen["codes"].values())
    report.add("Fuzzing", cases=total, cases_per_service={p: -(-target // n) * n for p, n in per_service.items()},
               rpcs=len(rpcs), status_codes=seen["codes"],
               refused_commands={p: len(v) for p, v in seen["refused"].items()},
               half_applied=half_applied)
    assert sum(half_applied.values()) == 0, half_applied

"""A new generation's first pass outside faust, against the real broker: the rows it writes
to the changelogs are the rows one event at a time gives, a refused event stops its
partition there (left to faust), offsets are committed only after, and only one pass runs
(a worker of a started generation reads the rows back instead); shares in processes of
their own do the same, and bring the rows' figures."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ganshou_common.testing.kafka import create_topics
from ganshou.common.v1 import envelope_pb2
from ganshou.intake.v1 import events_pb2 as it
from ganshou_common.testing.procs import free_port, kill, spawn_module
from ganshou_metrics.adapters.catch_up import Pass, _holds, _lock, _shares
from ganshou_metrics.adapters.tables import Tables
from ganshou_metrics.adapters.faust_app import Projection
from ganshou_metrics.adapters.first_pass import Share, ShareProcess, fold, fold_leads
from ganshou_metrics.adapters.reload import Reloaded
from ganshou_metrics.adapters.row_codec import decode_row, encode_row
from ganshou_metrics.domain.projection import Figures, apply

pytestmark = pytest.mark.integration
PARTITIONS = 3
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _envelope(stream: str, version: int, msg) -> envelope_pb2.EventEnvelope:
    env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=stream, stream_version=version,
                                     stream_type=stream.split("-")[0], event_type=msg.DESCRIPTOR.full_name,
                                     community_id="c1")
    env.payload.Pack(msg)
    return env


async def _topics(bootstrap: str, run: str) -> dict[str, str]:
    topics = {s: f"catch-up.{s}.{run}" for s in ("intake", "casework", "partner-resource")}
    await create_topics(bootstrap, topics.values(), PARTITIONS)
    return topics


async def _publish(bootstrap: str, topic: str, envelopes: list, poison_partition: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, env in enumerate(envelopes):
            await producer.send_and_wait(topic, env.SerializeToString(), key=env.stream_id.encode())
            if poison_partition is not None and i == len(envelopes) // 2:
                await producer.send_and_wait(topic, b"\xff not an envelope", key=b"poison", partition=poison_partition)
    finally:
        await producer.stop()


def _events(households: int) -> list:
    out = []
    for i in range(households):
        out.append(_envelope(f"household-h{i}", 1, it.HouseholdRegistered(household_id=f"h{i}", community_id="c1",
                                                                          segments=[1])))
        out.append(_envelope(f"resident-r{i}", 1, it.ResidentRegistered(resident_id=f"r{i}", household_id=f"h{i}",
                                                                        community_id="c1", segment=1)))
        if i % 2:
            out.append(_envelope(f"resident-r{i}", 2, it.ResidentErased(resident_id=f"r{i}", community_id="c1")))
    return out


async def _changelog(bootstrap: str, topic: str) -> dict[str, tuple[dict, int]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        rows, seen = {}, 0
        while seen < sum(ends.values()):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    rows[json.loads(r.key)] = (json.loads(r.value), r.partition)  # faust's json codec
                    seen += 1
        return rows
    finally:
        await consumer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> list[int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        return [await consumer.committed(tp) for tp in tps]
    finally:
        await consumer.stop()


async def test_the_rows_are_those_one_event_at_a_time_gives_and_a_refused_event_is_left(kafka_bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    events = _events(300)
    await _publish(kafka_bootstrap, topics["intake"], events, poison_partition=1)
    projection = Projection(kafka_bootstrap, f"catch-up-{run}", PARTITIONS, topics)
    await projection.ensure_changelogs(kafka_bootstrap)

    done = await projection.catch_up(kafka_bootstrap)

    assert done is not None and list(done.stopped_at) == [f"{topics['intake']}[1]"]
    changelog = await _changelog(kafka_bootstrap, projection.table_of[topics["intake"]].changelog_topic_name)
    # Folding one event at a time, without partition 1's events after the poison.
    poison_at = done.stopped_at[f"{topics['intake']}[1]"]
    consumer = AIOKafkaConsumer(topics["intake"], bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    expected, where, n, folded = {}, {}, 0, 0
    try:
        while n < len(events) + 1:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    n += 1
                    if r.partition == 1 and r.offset >= poison_at:
                        continue
                    env = envelope_pb2.EventEnvelope.FromString(r.value)
                    folded += 1
                    new = apply(expected.get(env.stream_id), env)
                    if new is not None:
                        expected[env.stream_id], where[env.stream_id] = new, r.partition
    finally:
        await consumer.stop()
    assert {k: row for k, (row, _) in changelog.items()} == expected
    assert all(p == where[k] for k, (_, p) in changelog.items())  # the partition its events came from
    assert done.rows == len(expected) and done.events == folded  # all but the refused one and those after it
    # faust's table holds the rows already, and its recovery starts after the last one written.
    table = projection.table_of[topics["intake"]]
    assert {k: json.loads(v) for k, v in table.data.data.items()} == expected
    ends = {tp.partition: end for tp, end in (await _end_offsets(kafka_bootstrap, table.changelog_topic_name)).items()}
    assert [table.persisted_offset(TopicPartition(table.changelog_topic_name, p)) for p in range(PARTITIONS)] == \
        [ends[p] - 1 for p in range(PARTITIONS)]
    committed = await _committed(kafka_bootstrap, projection.app.conf.id, topics["intake"])
    assert committed[1] == poison_at and None not in committed
    # The generation has started: another start (a restart) passes nothing and reads the
    # rows back from the changelogs instead (reload.py), faust's recovery to go on after them.
    again = Projection(kafka_bootstrap, f"catch-up-{run}", PARTITIONS, topics)
    reloaded = await again.catch_up(kafka_bootstrap)
    assert isinstance(reloaded, Reloaded) and reloaded.rows == len(expected)
    assert again.table_of[topics["intake"]].data.data == table.data.data
    assert [again.table_of[topics["intake"]].persisted_offset(TopicPartition(table.changelog_topic_name, p))
            for p in range(PARTITIONS)] == [ends[p] - 1 for p in range(PARTITIONS)]
    assert await _committed(kafka_bootstrap, projection.app.conf.id, topics["intake"]) == committed


def test_rows_are_serialised_as_faust_serialises_them() -> None:
    projection = Projection("127.0.0.1:1", "serialise", PARTITIONS)
    table = projection.tables["intake"]
    row = {"v": 3, "t": "resident", "s": {"kind": "resident", "c": "社区-1", "seg": 1, "erased": False, "met": ["a"]}}
    ours = Tables(projection.table_of).serialise(next(iter(projection.table_of)), "resident-r1", encode_row(row))
    assert ours == (table.changelog_topic.prepare_key("resident-r1", table.key_serializer)[0],
                    table.changelog_topic.prepare_value(encode_row(row), table.value_serializer)[0])
    # The row's bytes are what faust's json codec made of the row as a dict (changelogs
    # written before rows were held as bytes recover alike).
    assert encode_row(row) == table.changelog_topic.prepare_value(row, "json")[0]


@pytest.mark.parametrize("with_share_processes", [False, True])
async def test_only_one_pass_runs_for_a_generation(kafka_bootstrap: str, with_share_processes: bool) -> None:
    """Two workers of a generation at once: one passes, the other reads its rows back. With
    share processes, each worker's folds as soon as the pass's ends are known, before its
    worker holds the lock; the loser's is dismissed without writing a row."""
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    await _publish(kafka_bootstrap, topics["intake"], _events(200))
    a = Projection(kafka_bootstrap, f"catch-up-{run}", PARTITIONS, topics)
    b = Projection(kafka_bootstrap, f"catch-up-{run}", PARTITIONS, topics)
    await a.ensure_changelogs(kafka_bootstrap)
    shares = [ShareProcess.start(1 if with_share_processes else 0, "test", "INFO") for _ in range(2)]

    done = await asyncio.gather(a.catch_up(kafka_bootstrap, shares[0]), b.catch_up(kafka_bootstrap, shares[1]))

    assert sorted(isinstance(d, Reloaded) for d in done) == [False, True]
    assert next(d for d in done if isinstance(d, Pass)).events == 500  # 200 households, 200 residents, 100 erasures
    assert next(d for d in done if isinstance(d, Reloaded)).rows == 400  # the pass's rows, read back
    written = await _end_offsets(kafka_bootstrap, a.changelogs()[topics["intake"]])
    assert sum(written.values()) == 400  # the winner's rows, once


async def test_the_lock_stays_with_its_holder_while_another_waits(kafka_bootstrap: str) -> None:
    group = f"lock-{uuid.uuid4().hex[:8]}"
    first = await _lock(kafka_bootstrap, group)
    second = asyncio.create_task(_lock(kafka_bootstrap, group))
    try:
        await asyncio.sleep(4)  # the second has joined the group by now: a rebalance ran
        assert _holds(first) and not second.done()
        await first.stop()  # released: the waiting one gets it
        waiting = await asyncio.wait_for(second, 30)
        assert _holds(waiting)
        await waiting.stop()
    finally:
        second.cancel()



async def test_a_pass_in_two_processes_is_the_pass_in_one_and_its_figures_are_the_rows(kafka_bootstrap: str) -> None:
    """Shares in processes of their own (first_pass.py) write and hand over the same rows,
    commit the same offsets and stop at the same refused event as one process; the figures
    they bring are those a recompute from the rows gives, and the worker takes them instead
    of recomputing only while faust's recovery has left the rows as they were. The worker
    folds a share itself (lighter by nothing), or none (a pass this small: lighter by more
    than all of it)."""
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    await _publish(kafka_bootstrap, topics["intake"], _events(300), poison_partition=1)
    done, changelogs, held, committed = {}, {}, {}, {}
    ends = await _end_offsets(kafka_bootstrap, topics["intake"])
    assert _shares("", ends, {}, 2, 300)[1].leads  # a case below where the other share leads this one's
    for processes, lighter_by in ((1, 0), (2, 0), (2, 300), (2, 10_000)):
        projection = Projection(kafka_bootstrap, f"shares-{processes}-{lighter_by}-{run}", PARTITIONS, topics)
        await projection.ensure_changelogs(kafka_bootstrap)
        processes = (processes, lighter_by)
        done[processes] = await projection.catch_up(kafka_bootstrap, ShareProcess.start(processes[0] - 1, "test", "INFO"),
                                                    lighter_by)
        table = projection.table_of[topics["intake"]]
        changelogs[processes] = await _changelog(kafka_bootstrap, table.changelog_topic_name)
        held[processes] = dict(table.data.data)
        committed[processes] = await _committed(kafka_bootstrap, projection.app.conf.id, topics["intake"])

        rows = [decode_row(v) for t in projection.tables.values() for v in t.data.data.values()]
        recomputed = Figures.from_rows(rows)
        assert done[processes].figures.snapshot(now=NOW) == recomputed.snapshot(now=NOW)
        assert done[processes].figures.events == recomputed.events == done[processes].events
        projection._recompute_now()  # faust's recovery read nothing back: the pass's figures
        assert projection.figures is done[processes].figures

    one = (1, 0)
    for two in ((2, 0), (2, 300), (2, 10_000)):
        assert changelogs[one] == changelogs[two] and held[one] == held[two] and committed[one] == committed[two]
        assert (done[one].events, done[one].rows, done[one].stopped_at) == (
            done[two].events, done[two].rows, done[two].stopped_at)


@pytest.mark.parametrize("before_the_refused_one", [True, False])
async def test_a_share_goes_on_from_the_beginning_another_folded_for_it(kafka_bootstrap: str,
                                                                         before_the_refused_one: bool) -> None:
    """A partition's first events folded by one share (`Share.leads`), the rest by another on
    from them: the rows, keys, stops and figures of the partition folded whole, whether the
    lead ends before its refused event or stops at it."""
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    await _publish(kafka_bootstrap, topics["intake"], _events(150), poison_partition=1)
    changelogs = {t: f"{t}.changelog" for t in topics.values()}
    await create_topics(kafka_bootstrap, changelogs.values(), PARTITIONS)
    ends = {tp: end for tp, end in (await _end_offsets(kafka_bootstrap, topics["intake"])).items() if end}
    whole = await fold(Share(kafka_bootstrap, ends, changelogs))
    p1 = TopicPartition(topics["intake"], 1)
    refused = whole.stop[p1]
    lead = refused // 2 if before_the_refused_one else ends[p1] - 1

    led = await fold_leads(Share(kafka_bootstrap, {}, changelogs, leads={p1: lead}))
    assert bool(led.stopped) is not before_the_refused_one
    on = await fold(Share(kafka_bootstrap, ends, changelogs, starts={p1: lead}), leads=[led])

    assert (on.rows, on.stop, on.stopped_at, on.events) == (whole.rows, whole.stop, whole.stopped_at, whole.events)
    assert {t: {p: sorted(k) for p, k in parts.items()} for t, parts in on.keys.items()} == {
        t: {p: sorted(k) for p, k in parts.items()} for t, parts in whole.keys.items()}
    assert on.figures.snapshot(now=NOW) == whole.figures.snapshot(now=NOW)


async def test_the_pass_figures_are_not_taken_once_recovery_changed_a_row(kafka_bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    await _publish(kafka_bootstrap, topics["intake"], _events(20))
    projection = Projection(kafka_bootstrap, f"changed-{run}", PARTITIONS, topics)
    await projection.ensure_changelogs(kafka_bootstrap)
    done = await projection.catch_up(kafka_bootstrap)
    store = projection.table_of[topics["intake"]].data
    # faust's recovery reads a row written after the pass (another worker's, say): resident r1 erased.
    erased = {"v": 2, "t": "resident", "s": {"kind": "resident", "c": "c1", "seg": 1, "erased": True}}
    record = SimpleNamespace(key="resident-r0", value=encode_row(erased),
                             message=SimpleNamespace(value=encode_row(erased), partition=0))
    store.apply_changelog_batch([record], lambda k: k, lambda v: v)

    projection._recompute_now()

    assert projection.figures is not done.figures
    rows = [decode_row(v) for t in projection.tables.values() for v in t.data.data.values()]
    assert projection.figures.snapshot(now=NOW) == Figures.from_rows(rows).snapshot(now=NOW)
    assert projection.figures.snapshot(now=NOW) != done.figures.snapshot(now=NOW)


async def test_a_share_that_fails_in_its_process_fails_the_pass() -> None:
    share = Share("127.0.0.1:1", {TopicPartition("nowhere", 0): 5}, {"nowhere": "nowhere-changelog"})
    process = ShareProcess("test", "INFO")
    try:
        with pytest.raises(RuntimeError, match="first-pass process failed(.|\n)*KafkaConnectionError"):
            await process.fold(share)
    finally:
        process.dismiss()


async def test_share_processes_not_needed_exit(kafka_bootstrap: str) -> None:
    """Started ahead of the pass: dismissed when the generation has passed already (a
    restart), and when it has a share for fewer of them than started."""
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    await _publish(kafka_bootstrap, topics["intake"], _events(5))
    projection = Projection(kafka_bootstrap, f"dismissed-{run}", PARTITIONS, topics)
    await projection.ensure_changelogs(kafka_bootstrap)
    spawned = ShareProcess.start(PARTITIONS + 1, "test", "INFO")  # more than the partitions
    assert (await projection.catch_up(kafka_bootstrap, spawned)).events == 12  # 5 households, 5 residents, 2 erasures
    again = ShareProcess.start(1, "test", "INFO")
    assert isinstance(await projection.catch_up(kafka_bootstrap, again), Reloaded)
    for process in spawned + again:
        assert process._process.exitcode == 0


async def _publish_many(bootstrap: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        sent = []
        for i in range(n):
            env = _envelope(f"resident-r{i}", 1, it.ResidentRegistered(resident_id=f"r{i}", household_id=f"h{i}",
                                                                         community_id="c1", segment=1))
            sent.append(await producer.send(topic, env.SerializeToString(), key=env.stream_id.encode()))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


async def _logged(proc, log: Path, event: str, timeout: float) -> str:
    """The worker's log once it has logged `event` (its tail if it exits first)."""
    async with asyncio.timeout(timeout):
        while f'"{event}"' not in (text := log.read_text()):
            assert proc.poll() is None, text[-3000:]
            await asyncio.sleep(0.05)
    return text


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def test_a_worker_killed_mid_pass_takes_its_shares_with_it_and_commits_nothing(kafka_bootstrap: str,
                                                                                      tmp_path: Path) -> None:
    """kill -9 while the shares fold: the share's process dies too (it cannot write older rows
    after a later pass's), no offset is committed, and the next start passes in full."""
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    n = 300_000
    await _publish_many(kafka_bootstrap, topics["intake"], n)
    env = {"KAFKA_BOOTSTRAP": kafka_bootstrap, "GANSHOU_TOKEN_SECRET": "kill-test-secret-0123456789abcdef",
           "GRPC_HOST": "127.0.0.1", "METRICS_GENERATION": f"killed-{run}", "METRICS_PARTITIONS": str(PARTITIONS),
           "METRICS_CATCH_UP_PROCESSES": "2", "METRICS_TOPIC_INTAKE": topics["intake"],
           "METRICS_TOPIC_CASEWORK": topics["casework"], "METRICS_TOPIC_PARTNER_RESOURCE": topics["partner-resource"]}
    group = f"ganshou-metrics-gkilled-{run}"

    def start(log: str):
        return spawn_module("ganshou_metrics", {**env, "GRPC_PORT": str(free_port()), "METRICS_PORT": str(free_port())},
                            tmp_path / log, "worker")

    first = start("first.log")
    try:
        await _logged(first, tmp_path / "first.log", "catch_up_started", 60)
        await asyncio.sleep(0.7)  # both shares are folding
        shares = _children(first.pid)  # the share processes, forked: the worker's only children
        assert shares and '"catch_up_done"' not in (tmp_path / "first.log").read_text()
    finally:
        kill(first)
    async with asyncio.timeout(0.5):  # not left to fold the rest of its share (seconds)
        while any(_alive(pid) for pid in shares):
            await asyncio.sleep(0.05)
    assert await _committed(kafka_bootstrap, group, topics["intake"]) == [None] * PARTITIONS

    second = start("second.log")
    try:
        log = await _logged(second, tmp_path / "second.log", "catch_up_done", 120)
        done = json.loads(next(line for line in log.splitlines() if '"catch_up_done"' in line))
        assert done["events"] == n and done["rows"] == n and done["processes"] == 2
        ends = await _end_offsets(kafka_bootstrap, topics["intake"])
        assert await _committed(kafka_bootstrap, group, topics["intake"]) == [ends[tp] for tp in sorted(ends)]
    finally:
        kill(second)


async def _projected(port: int, secret: str) -> int:
    import grpc

    from ganshou.metrics.v1 import metrics_service_pb2 as mapi
    from ganshou.metrics.v1 import metrics_service_pb2_grpc as mrpc
    from ganshou_common.grpc_scaffold.auth import Role, mint_token

    md = (("authorization", "Bearer " + mint_token(secret, "test", Role.TOWN_ADMIN)),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await mrpc.MetricsServiceStub(channel).GetFigures(mapi.GetFiguresRequest(), metadata=md, timeout=5)
            return reply.events_projected
    except grpc.aio.AioRpcError:
        return -1  # not serving yet


async def test_a_worker_that_reloaded_holds_every_row_once_the_other_worker_leaves(kafka_bootstrap: str,
                                                                                   tmp_path: Path) -> None:
    """A rolling update: a second worker of a started generation reads every row back, is
    given some partitions while the first still runs, then all of them once it leaves; the
    partitions it was not given at first are recovered in full, not after the offsets it had
    read back (their rows were dropped meanwhile)."""
    run = uuid.uuid4().hex[:8]
    topics = await _topics(kafka_bootstrap, run)
    events = _events(300)
    await _publish(kafka_bootstrap, topics["intake"], events)
    secret = "reload-test-secret-0123456789abcdef"
    env = {"KAFKA_BOOTSTRAP": kafka_bootstrap, "GANSHOU_TOKEN_SECRET": secret, "GRPC_HOST": "127.0.0.1",
           "METRICS_GENERATION": f"rolling-{run}", "METRICS_PARTITIONS": str(PARTITIONS),
           "METRICS_TOPIC_INTAKE": topics["intake"], "METRICS_TOPIC_CASEWORK": topics["casework"],
           "METRICS_TOPIC_PARTNER_RESOURCE": topics["partner-resource"]}
    ports = [free_port(), free_port()]
    workers = [spawn_module("ganshou_metrics", {**env, "GRPC_PORT": str(ports[0]), "METRICS_PORT": str(free_port())},
                            tmp_path / "w0.log", "worker")]
    try:
        async with asyncio.timeout(90):
            while await _projected(ports[0], secret) != len(events):
                await asyncio.sleep(0.3)
        workers.append(spawn_module("ganshou_metrics", {**env, "GRPC_PORT": str(ports[1]),
                                                        "METRICS_PORT": str(free_port())}, tmp_path / "w1.log", "worker"))
        await _logged(workers[1], tmp_path / "w1.log", "changelogs_reloaded", 60)
        async with asyncio.timeout(90):  # serving its share of the partitions beside the first
            while not 0 < await _projected(ports[1], secret) < len(events):
                await asyncio.sleep(0.3)
        kill(workers[0], signal.SIGTERM)  # leaves the group: the second is given every partition
        async with asyncio.timeout(90):
            while await _projected(ports[1], secret) != len(events):
                await asyncio.sleep(0.3)
    finally:
        for worker in workers:
            kill(worker)

"""The `ganshou` command: what town staff and operators reach for daily.

    ganshou token --role town_admin            a local bearer token
    ganshou demo [--seed 2016]                 load the demonstration town
    ganshou figures [--community C] [--watch]  the live figures
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import grpc
import typer
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from ganshou.common.v1 import types_pb2
from ganshou.metrics.v1 import metrics_service_pb2 as mapi
from ganshou_cli.clients import Clients, every_page, token as make_token
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.errors import field_violations

app = typer.Typer(help="Ganshou (感受): felt-experience community service.", no_args_is_help=True)
console = Console()
notices = Console(stderr=True)  # what is said beside output a script may read (figures --output json)

ROWS = [
    ("问需于民 Visit coverage", "visit_coverage", "{:.1%}", "households_visited", "households_due"),
    ("Issues received", "issues_received", "{:,}", None, None),
    ("Response rate", "response_rate", "{:.1%}", "responded", "issues_received"),
    # The promises' rates are of those decided (kept or late): one still pending counts in neither.
    ("On-time response (1 h)", "on_time_response_rate", "{:.1%}", "response_promises_kept",
     ("response_promises_kept", "response_promises_late")),
    ("On site within 15 min", "on_site_within_15_min_rate", "{:.1%}", "on_site_kept", ("on_site_kept", "on_site_late")),
    ("Resolved or explained", "resolved_or_explained_rate", "{:.1%}", None, "issues_received"),
    ("Satisfaction (1–5)", "satisfaction_mean", "{:.2f}", "ratings", None),
    ("Satisfied share", "satisfied_share", "{:.1%}", None, None),
    ("Reopen rate", "reopen_rate", "{:.1%}", "reopened", None),
    ("Pairing signing rate", "pairing_signing_rate", "{:.1%}", "units_with_pairing", "member_units"),
    ("Service person-times", "service_person_times", "{:,}", None, None),
    ("Aid paid (yuan)", "aid_paid_fen", "fen", None, None),
    ("Aid beneficiaries (distinct)", "aid_distinct_persons", "{:,}", "aid_person_times", None),
    ("Deliberation turnout", "deliberation_turnout", "{:.1%}", "deliberation_households_voted",
     "deliberation_households_eligible"),
    ("Deliberation approval", "deliberation_approval", "{:.1%}", "votes_for", None),
    ("Organisations standardised (六个一)", "organisations_all_six", "{:,}", "organisations_all_six", "organisations"),
    ("Commitments fulfilled", "commitments_fulfilled", "{:,}", "commitments_fulfilled", "commitments_made"),
    ("Partner members registered", "partner_members_registered", "{:,}", None, None),
    ("Volunteers", "volunteers", "{:,}", "volunteer_activities", None),
    ("Served after hours (evenings)", "after_hours_evening_person_times", "{:,}", None, None),
    ("Served after hours (weekends)", "after_hours_weekend_person_times", "{:,}", None, None),
]


def _fmt(fmt: str, value) -> str:
    return f"{value // 100:,}.{value % 100:02d}" if fmt == "fen" else fmt.format(value)


def figures_table(f: mapi.Figures, title: str) -> Table:
    table = Table(title=title)
    for col in ("figure", "value", "of"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for label, key, fmt, num, den in ROWS:
        detail = ""
        if num and den:
            of = sum(getattr(f, d) for d in den) if isinstance(den, tuple) else getattr(f, den)
            detail = f"{getattr(f, num):,} / {of:,}"
        elif num:
            detail = f"{getattr(f, num):,}"
        table.add_row(label, _fmt(fmt, getattr(f, key)), detail)
    return table


def _fail(exc: grpc.aio.AioRpcError) -> None:
    console.print(f"[red]{exc.code().name}[/red]: {exc.details()}")
    for field, why in field_violations(exc).items():
        console.print(f"  [yellow]{field}[/yellow]: {why}")
    raise typer.Exit(2)


@app.command()
def token(role: Annotated[Role, typer.Option(help="the role to act in")] = Role.TOWN_ADMIN,
          community: Annotated[list[str], typer.Option(help="a community in scope (repeat)")] = [],  # noqa: B006
          subject: str = "local-user") -> None:
    """Mint a local bearer token (needs GANSHOU_TOKEN_SECRET)."""
    print(make_token(role, community, subject))


@app.command()
def demo(seed: int = 2016, scale: Annotated[float, typer.Option(
        help="1.0 ≈ Zhangjiang's 50,000 households in 35 communities")] = 0.002,
         communities: Annotated[int, typer.Option(help="fewer communities than the town's 35")] = 35,
         households: Annotated[int, typer.Option(help="households per community (overrides --scale)")] = 0,
         show: bool = True) -> None:
    """Load the demonstration town through the gRPC APIs, deterministic for a seed, then show
    its figures. A town already loaded is left as it is."""
    from ganshou_cli.demo import load_town

    households = households or max(2, round(50_000 / 35 * scale))

    async def run() -> None:
        clients = Clients.connect()
        try:
            if not await load_town(clients, seed, communities, households):
                console.print("the demonstration town is already loaded (make reset starts afresh)")
            if show:
                await asyncio.sleep(2)  # let the projection catch up with the last commands
                reply = await clients.metrics.GetFigures(mapi.GetFiguresRequest(), metadata=clients.metadata)
                console.print(figures_table(reply.figures, "张江 — the live figures"))
        except grpc.aio.AioRpcError as exc:
            _fail(exc)
        finally:
            await clients.close()

    asyncio.run(run())


@app.command()
def figures(community: str = "", segment: Annotated[str, typer.Option(
        help="local, migrant, white_collar, high_end_talent, foreign_national")] = "",
            watch: bool = False, output: Annotated[str, typer.Option(help="table or json")] = "table") -> None:
    """The live figures, for the town or one community (and segment)."""
    seg = types_pb2.Segment.Value(f"SEGMENT_{segment.upper()}") if segment else 0

    async def run() -> None:
        clients = Clients.connect()
        try:
            if watch:
                await watch_figures(clients, mapi.WatchFiguresRequest(community_id=community, segment=seg), show)
            else:
                show((await clients.metrics.GetFigures(mapi.GetFiguresRequest(community_id=community, segment=seg),
                                                       metadata=clients.metadata)).figures)
        except grpc.aio.AioRpcError as exc:
            _fail(exc)
        finally:
            await clients.close()

    def show(f: mapi.Figures) -> None:
        if output == "json":
            print(json.dumps(json_format.MessageToDict(f, preserving_proto_field_name=True, always_print_fields_with_no_presence=True), ensure_ascii=False))
        else:
            console.print(figures_table(f, f"Live figures — {community or 'the whole town'}"))

    asyncio.run(run())


def _with_clients(work):
    """`work(clients)` once, its answer returned; an RPC error ends the command with its
    status and fields (_fail)."""
    async def run():
        clients = Clients.connect()
        try:
            return await work(clients)
        except grpc.aio.AioRpcError as exc:
            _fail(exc)
        finally:
            await clients.close()

    return asyncio.run(run())


def _every_page(ask, items: str) -> list:
    """Every page of a list: `ask(clients, page_token)` is one call; `items` its repeated field."""
    return _with_clients(lambda clients: every_page(lambda token_: ask(clients, token_), items))


def _erasure_request_id(subject_id: str) -> str:
    """The same for every erasure of one subject: run again, it answers as the first did."""
    import hashlib

    return "erase-" + hashlib.sha256(subject_id.encode()).hexdigest()[:24]


@app.command()
def communities(output: Annotated[str, typer.Option(help="table or json")] = "table") -> None:
    """The communities registered, by id (a cadre: those they serve)."""
    from ganshou.intake.v1 import events_pb2 as ievents
    from ganshou.intake.v1 import intake_service_pb2 as iapi

    found = _every_page(lambda clients, token_: clients.intake.ListCommunities(
        iapi.ListCommunitiesRequest(page_size=500, page_token=token_), metadata=clients.metadata), "communities")
    if output == "json":
        print(json.dumps([json_format.MessageToDict(c, preserving_proto_field_name=True) for c in found],
                         ensure_ascii=False))
        return
    table = Table(title=f"Communities ({len(found)})")
    for col in ("id", "name", "kind"):
        table.add_column(col)
    for c in found:
        table.add_row(c.community_id, c.name, ievents.CommunityKind.Name(c.kind).removeprefix("COMMUNITY_KIND_").lower())
    console.print(table)


async def watch_figures(clients: Clients, request: mapi.WatchFiguresRequest, show) -> None:
    """Until interrupted: a server stopping or restarting (UNAVAILABLE) is watched again,
    waiting a little longer each time it fails again; any other error ends the watch."""
    pause = 0.5
    while True:
        try:
            async for update in clients.metrics.WatchFigures(request, metadata=clients.metadata):
                pause = 0.5
                show(update.figures)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            notices.print(f"[dim]figures unavailable ({exc.details()}): watching again in {pause:g} s[/dim]")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 8.0)


import_app = typer.Typer(help="Bulk imports.")
cases_app = typer.Typer(help="Cases: list and show.")
app.add_typer(import_app, name="import")
app.add_typer(cases_app, name="cases")


@import_app.command("households")
def import_households(file: Path, rejected: Annotated[Path | None, typer.Option(
        help="where the bad rows go (default: FILE.rejected.csv)")] = None) -> None:
    """Import households (with residents) from a CSV file through ImportHouseholds; every good
    row is kept, bad rows are written with their reasons. Exit 1 when some were rejected."""
    import hashlib

    from rich.progress import Progress

    from ganshou_cli.importing import parse, requests, write_rejected

    if not file.exists():
        console.print(f"[red]no such file[/red]: {file}")
        raise typer.Exit(2)
    try:
        parsed = parse(file)
    except ValueError as exc:  # not text we can read
        console.print(f"[red]cannot read[/red]: {exc}")
        raise typer.Exit(2) from None
    request_id = "import-" + hashlib.sha256(file.read_bytes()).hexdigest()[:24]  # same file, same import

    async def run():
        clients = Clients.connect()
        try:
            with Progress(console=console) as progress:
                task = progress.add_task("importing households", total=len(parsed.households))

                async def stream():
                    for r in requests(parsed, request_id, lambda n: progress.advance(task, n)):
                        yield r

                return await clients.intake.ImportHouseholds(stream(), metadata=clients.metadata)
        except grpc.aio.AioRpcError as exc:
            _fail(exc)
        finally:
            await clients.close()

    result = asyncio.run(run())
    bad = parsed.whole_households(parsed.rejected + [(r.row_number, r.field, r.reason) for r in result.rejected])
    console.print(f"imported {result.households_imported} households, {result.residents_imported} residents; "
                  f"{len(bad)} rows rejected")
    if bad:
        target = rejected or file.with_suffix(".rejected.csv")
        write_rejected(target, parsed, bad)
        console.print(f"rejected rows with their reasons: {target}")
        raise typer.Exit(1)


@cases_app.command("list")
def cases_list(community: Annotated[str, typer.Argument(
                   help="the community (empty: every community, for the town's admins, auditors and hotline)")] = "",
               status: str = "", overdue: bool = False,
               partner: Annotated[str, typer.Option(help="only the cases assigned to this partner")] = "",
               output: Annotated[str, typer.Option(help="table or json")] = "table") -> None:
    """The cases of a community, a partner's, or the whole town's (all pages, newest first)."""
    from ganshou.casework.v1 import casework_service_pb2 as capi
    from ganshou.casework.v1 import events_pb2 as cev

    status_value = capi.CaseStatus.Value(f"CASE_STATUS_{status.upper()}") if status else 0

    found = _every_page(lambda clients, token_: clients.casework.ListCases(capi.ListCasesRequest(
        community_id=community, partner_id=partner, status=status_value, overdue_only=overdue, page_size=200,
        page_token=token_), metadata=clients.metadata), "cases")
    if output == "json":
        print(json.dumps([json_format.MessageToDict(k, preserving_proto_field_name=True, always_print_fields_with_no_presence=True) for k in found],
                         ensure_ascii=False))
        return
    table = Table(title="Cases — " + (" · ".join(x for x in (community, partner and f"partner {partner}") if x)
                                      or "every community (partner staff: their partner's)"))
    for col in ("case", "status", "track", "channel", "category", "opened", "score"):
        table.add_column(col)
    for k in found:
        table.add_row(k.case_id[:8], capi.CaseStatus.Name(k.status).removeprefix("CASE_STATUS_").lower(),
                      cev.Track.Name(k.track).removeprefix("TRACK_").lower() if k.track else "",
                      types_pb2.Channel.Name(k.channel).removeprefix("CHANNEL_").lower(), k.category,
                      f"{k.opened_at.ToDatetime():%Y-%m-%d %H:%M}", str(k.last_score or ""))
    console.print(table)


@cases_app.command("show")
def cases_show(case_id: str, output: Annotated[str, typer.Option(help="table or json")] = "table",
               demand: Annotated[bool, typer.Option("--demand", help="the id is a demand's: show the case that follows it")] = False) -> None:
    """One case with its whole history."""
    from ganshou.casework.v1 import casework_service_pb2 as capi
    from ganshou.casework.v1 import events_pb2 as cev

    request = capi.GetCaseRequest(demand_id=case_id) if demand else capi.GetCaseRequest(case_id=case_id)

    async def get(clients):
        return (await clients.casework.GetCase(request, metadata=clients.metadata)).case

    k = _with_clients(get)
    if output == "json":
        print(json.dumps(json_format.MessageToDict(k, preserving_proto_field_name=True, always_print_fields_with_no_presence=True), ensure_ascii=False))
        return
    console.print(f"[bold]{k.case_id}[/bold] {k.community_id} {k.category}: {k.description}")
    console.print(f"status {capi.CaseStatus.Name(k.status)}, contacts {k.contacts}, reopened {k.reopen_count}")
    for p in k.promises:
        kind = cev.PromiseKind.Name(p.kind).removeprefix("PROMISE_KIND_").lower().replace("_", " ")
        console.print(f"  promise of {kind}: due {p.due_at.ToDatetime():%Y-%m-%d %H:%M} UTC, {p.state}")
    table = Table(title="history")
    for col in ("v", "event", "by", "at", "detail"):
        table.add_column(col)
    for h in k.history:
        table.add_row(str(h.version), h.event_type.rsplit(".", 1)[-1], h.actor,
                      f"{h.recorded_at.ToDatetime():%m-%d %H:%M:%S}", h.detail[:80])
    console.print(table)


@app.command("erase-resident")
def erase_resident(resident_id: str, reason: Annotated[str, typer.Option(help="why (recorded)")]) -> None:
    """Erase a resident's personal data everywhere (their key is destroyed); figures stay right."""
    from ganshou.intake.v1 import intake_service_pb2 as iapi

    done = _with_clients(lambda clients: clients.intake.EraseResident(iapi.EraseResidentRequest(
        request_id=_erasure_request_id(resident_id), resident_id=resident_id, reason=reason),
        metadata=clients.metadata))
    console.print(f"resident {resident_id} erased"
                  + (", with their household's address and visit notes (its last resident)" if done.household_erased else "")
                  + (f", and the caller's phone of {done.calls_erased} hotline call(s)" if done.calls_erased else ""))


@app.command("erase-volunteer")
def erase_volunteer(volunteer_id: str, reason: Annotated[str, typer.Option(help="why (recorded)")]) -> None:
    """Erase a volunteer's personal data everywhere (their key is destroyed); their hours stay."""
    from ganshou.partner_resource.v1 import partner_resource_service_pb2 as papi

    _with_clients(lambda clients: clients.partner.EraseVolunteer(papi.EraseVolunteerRequest(
        request_id=_erasure_request_id(volunteer_id), volunteer_id=volunteer_id, reason=reason),
        metadata=clients.metadata))
    console.print(f"volunteer {volunteer_id} erased")


@app.command()
def report(period: Annotated[str, typer.Option(help="the period the report covers, e.g. 2026年下半年")],
           out: Annotated[Path, typer.Option(help="the PDF to write; an HTML file is written beside it")]) -> None:
    """The leaders' briefing as PDF and HTML, in Simplified Chinese."""
    from ganshou_cli.report import gather, render

    missing = render(_with_clients(lambda clients: gather(clients, period)), out, out.with_suffix(".html"))
    console.print(f"wrote {out} and {out.with_suffix('.html')}")
    if missing:
        console.print(f"[yellow]missing glyphs[/yellow]: {missing[:3]}")
        raise typer.Exit(1)


@app.command("rebuild-projections")
def rebuild_projections() -> None:
    """Rebuild the live figures from the beginning of the topics into a new generation and
    switch over once it matches (local system; on Kubernetes, see docs/operations.md)."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[4] / "deploy/local/services.sh"
    raise typer.Exit(subprocess.call(["bash", str(script), "rebuild"]))


@app.command("rebuild-wait", hidden=True)
def rebuild_wait(live: Annotated[str, typer.Option()], rebuilt: Annotated[str, typer.Option()],
                 timeout: float = 600) -> None:
    """Wait until the rebuilt generation has caught up with the live one (same figures)."""
    from ganshou.metrics.v1 import metrics_service_pb2_grpc as rpc
    from rich.progress import Progress

    async def run() -> int:
        md = (("authorization", f"Bearer {make_token()}"),)
        async with grpc.aio.insecure_channel(live) as a, grpc.aio.insecure_channel(rebuilt) as b:
            old, new = rpc.MetricsServiceStub(a), rpc.MetricsServiceStub(b)
            last = None
            with Progress() as progress:
                task = progress.add_task("projecting from the beginning", total=None)
                deadline = asyncio.get_running_loop().time() + timeout
                while asyncio.get_running_loop().time() < deadline:
                    try:
                        x = await old.GetFigures(mapi.GetFiguresRequest(), metadata=md, timeout=5)
                        y = await new.GetFigures(mapi.GetFiguresRequest(), metadata=md, timeout=5)
                    except grpc.aio.AioRpcError:
                        await asyncio.sleep(1)
                        continue
                    progress.update(task, total=x.events_projected, completed=y.events_projected)
                    if y.figures == x.figures and y.events_projected >= x.events_projected > 0:
                        return 0
                    last = (x, y)
                    await asyncio.sleep(1)
        if last:  # say which figures still differ
            x, y = (json_format.MessageToDict(f.figures, preserving_proto_field_name=True) for f in last)
            diff = {k: (x.get(k), y.get(k)) for k in x.keys() | y.keys() if x.get(k) != y.get(k)}
            console.print(f"[red]the rebuilt figures differ[/red] (live, rebuilt): {diff}; events "
                          f"{last[0].events_projected} / {last[1].events_projected}")
        return 1

    raise typer.Exit(asyncio.run(run()))


if __name__ == "__main__":
    app()

"""Partner-resource end to end: the real gRPC server and PostgreSQL."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

from ganshou.common.v1 import types_pb2 as t
from ganshou.partner_resource.v1 import events_pb2 as ev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as api
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.errors import field_violations
from ganshou_common.schemas import load_all_schemas

pytestmark = pytest.mark.integration
ADMIN = Role.TOWN_ADMIN


def rid() -> str:
    return uuid.uuid4().hex


async def error_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_partners_pairings_agreements(partners, community_id) -> None:
    await partners.knows(community_id)
    admin, s = partners.auth(ADMIN), partners.stub
    p = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name="上海中医药大学",
                                                           kind=ev.PARTNER_KIND_UNIVERSITY), metadata=admin)
    cadre = partners.auth(Role.COMMUNITY_CADRE, community_id)
    pairing = await s.SignPairing(api.SignPairingRequest(request_id=rid(), partner_id=p.partner_id,
                                                         community_id=community_id, relief_group="第7组"), metadata=cadre)
    again = await error_of(s.SignPairing(api.SignPairingRequest(request_id=rid(), partner_id=p.partner_id,
                                                                community_id=community_id), metadata=cadre))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    unknown = await error_of(s.SignPairing(api.SignPairingRequest(request_id=rid(), partner_id=p.partner_id,
                                                                  community_id="c-unknown"), metadata=admin))
    assert "community_id" in field_violations(unknown)
    await s.RecordAgreement(api.RecordAgreementRequest(request_id=rid(), pairing_id=pairing.pairing_id, title="义诊",
                                                       category=ev.AGREEMENT_CATEGORY_SERVICE_FOR_PEOPLE), metadata=cadre)
    listed = await s.ListAgreements(api.ListAgreementsRequest(community_id=community_id), metadata=cadre)
    assert [a.category for a in listed.agreements] == [ev.AGREEMENT_CATEGORY_SERVICE_FOR_PEOPLE]
    got = await s.GetPairing(api.GetPairingRequest(pairing_id=pairing.pairing_id), metadata=cadre)
    assert got.pairing.relief_group == "第7组" and got.pairing.active
    agreement_id = listed.agreements[0].agreement_id
    assert (await s.GetAgreement(api.GetAgreementRequest(agreement_id=agreement_id), metadata=cadre)).agreement.title == "义诊"
    outsider = partners.auth(Role.COMMUNITY_CADRE, "c-else")
    assert (await error_of(s.GetPairing(api.GetPairingRequest(pairing_id=pairing.pairing_id), metadata=outsider))).code() \
        == grpc.StatusCode.PERMISSION_DENIED
    assert (await error_of(s.GetAgreement(api.GetAgreementRequest(agreement_id="nope"), metadata=admin))).code() == \
        grpc.StatusCode.NOT_FOUND
    await s.EndPairing(api.EndPairingRequest(request_id=rid(), pairing_id=pairing.pairing_id, reason="到期"),
                       metadata=admin)
    pairings = await s.ListPairings(api.ListPairingsRequest(community_id=community_id), metadata=cadre)
    assert [x.active for x in pairings.pairings] == [False]
    other = await error_of(s.ListPairings(api.ListPairingsRequest(community_id="c-else"), metadata=cadre))
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_list_of_a_partner_or_programme_never_registered_is_not_found(partners) -> None:
    admin, s = partners.auth(ADMIN), partners.stub
    for listing, field in ((s.ListDeliveries(api.ListDeliveriesRequest(partner_id="p-typo"), metadata=admin), "partner_id"),
                           (s.ListPairings(api.ListPairingsRequest(partner_id="p-typo"), metadata=admin), "partner_id"),
                           (s.ListDisbursements(api.ListDisbursementsRequest(programme_id="a-typo"), metadata=admin),
                            "programme_id")):
        err = await error_of(listing)
        assert err.code() == grpc.StatusCode.NOT_FOUND and field in err.details()
    p = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name=f"新伙伴{rid()[:6]}",
                                                           kind=ev.PARTNER_KIND_COMPANY), metadata=admin)
    # registered, nothing delivered yet: an empty page
    assert not (await s.ListDeliveries(api.ListDeliveriesRequest(partner_id=p.partner_id), metadata=admin)).deliveries


async def test_capacity_is_counted_by_the_towns_months(partners, community_id, monkeypatch) -> None:
    """01:00 on 1 December in Shanghai is still 30 November in UTC: the town's month counts."""
    from ganshou_partner_resource.app import handlers

    s, admin = partners.stub, partners.auth(ADMIN)
    p = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name=f"所{rid()[:6]}",
                                                           kind=ev.PARTNER_KIND_COMPANY), metadata=admin)
    o = await s.PublishOffering(api.PublishOfferingRequest(request_id=rid(), partner_id=p.partner_id, category="clinic",
                                                           title="义诊", capacity_per_period=5), metadata=admin)

    def at(moment: datetime):
        monkeypatch.setattr(handlers, "_now", lambda: moment)

    at(datetime(2026, 11, 30, 15, 30, tzinfo=UTC))  # 23:30 on 30 November in Shanghai
    assert (await s.RecordDelivery(api.RecordDeliveryRequest(request_id=rid(), offering_id=o.offering_id,
                                                             community_id=community_id, person_times=5),
                                   metadata=admin)).used_this_period == 5
    at(datetime(2026, 11, 30, 17, 0, tzinfo=UTC))  # 01:00 on 1 December: a new month, its capacity whole
    assert (await s.RecordDelivery(api.RecordDeliveryRequest(request_id=rid(), offering_id=o.offering_id,
                                                             community_id=community_id, person_times=5),
                                   metadata=admin)).used_this_period == 5
    shown = await s.GetOffering(api.GetOfferingRequest(offering_id=o.offering_id), metadata=admin)
    assert shown.offering.used_this_period == 5


async def test_offerings_deliveries_and_capacity(partners, community_id) -> None:
    await partners.knows(community_id, [("r-1", t.SEGMENT_MIGRANT)])
    s = partners.stub
    p = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name="园林所", kind=ev.PARTNER_KIND_GOVERNMENT_AGENCY),
                                metadata=partners.auth(ADMIN))
    staff = partners.auth(Role.PARTNER_STAFF, partner=p.partner_id)
    o = await s.PublishOffering(api.PublishOfferingRequest(request_id=rid(), partner_id=p.partner_id, category="clinic",
                                                           title="义诊推拿", capacity_per_period=3,
                                                           communities_served=[community_id]), metadata=staff)
    d = await s.RecordDelivery(api.RecordDeliveryRequest(request_id=rid(), offering_id=o.offering_id,
                                                         community_id=community_id, resident_id="r-1", person_times=2),
                               metadata=staff)
    assert d.used_this_period == 2
    over = await error_of(s.RecordDelivery(api.RecordDeliveryRequest(
        request_id=rid(), offering_id=o.offering_id, community_id=community_id, person_times=2), metadata=staff))
    assert over.code() == grpc.StatusCode.FAILED_PRECONDITION and "capacity" in over.details()
    forced = await s.RecordDelivery(api.RecordDeliveryRequest(request_id=rid(), offering_id=o.offering_id,
                                                              community_id=community_id, person_times=2,
                                                              override_capacity=True), metadata=staff)
    assert forced.used_this_period == 4
    # An override lets a delivery past capacity, never past any town's count (its sums would overflow).
    absurd = await error_of(s.RecordDelivery(api.RecordDeliveryRequest(
        request_id=rid(), offering_id=o.offering_id, community_id=community_id, person_times=2**63 - 1,
        override_capacity=True), metadata=staff))
    assert absurd.code() == grpc.StatusCode.INVALID_ARGUMENT and "person_times" in field_violations(absurd)
    delivery = await s.GetDelivery(api.GetDeliveryRequest(delivery_id=d.delivery_id), metadata=staff)
    assert delivery.delivery.person_times == 2 and delivery.delivery.resident_id == "r-1"
    cadre = partners.auth(Role.COMMUNITY_CADRE, community_id)
    seen = await s.ListOfferings(api.ListOfferingsRequest(community_id=community_id), metadata=cadre)
    assert [(x.offering_id, x.used_this_period) for x in seen.offerings] == [(o.offering_id, 4)]

    rival = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name="x", kind=ev.PARTNER_KIND_COMPANY),
                                    metadata=partners.auth(ADMIN))
    intruder = partners.auth(Role.PARTNER_STAFF, partner=rival.partner_id)
    for call in (s.RecordDelivery(api.RecordDeliveryRequest(request_id=rid(), offering_id=o.offering_id,
                                                            community_id=community_id, person_times=1), metadata=intruder),
                 s.WithdrawOffering(api.WithdrawOfferingRequest(request_id=rid(), offering_id=o.offering_id),
                                    metadata=intruder),
                 s.PublishOffering(api.PublishOfferingRequest(request_id=rid(), partner_id=p.partner_id, category="x",
                                                              title="x", capacity_per_period=1), metadata=intruder)):
        assert (await error_of(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    bad = await error_of(s.PublishOffering(api.PublishOfferingRequest(request_id=rid(), partner_id=p.partner_id,
                                                                      period="2026-13"), metadata=staff))
    assert set(field_violations(bad)) == {"category", "title", "capacity_per_period", "period"}

    conn = await asyncpg.connect(partners.dsn)
    row = await conn.fetchrow("SELECT payload FROM events WHERE event_type = 'ganshou.partner_resource.v1.ServiceDelivered' "
                              "ORDER BY position LIMIT 1")
    await conn.close()
    delivered = ev.ServiceDelivered.FromString(row["payload"])
    assert (delivered.person_times, delivered.segment, delivered.community_id) == (2, t.SEGMENT_MIGRANT, community_id)


async def test_aid_in_integer_fen_reversed_by_its_own_event(partners, community_id) -> None:
    await partners.knows(community_id, [("r-9", t.SEGMENT_LOCAL)])
    s, admin = partners.stub, partners.auth(ADMIN)
    prog = await s.OpenAidProgramme(api.OpenAidProgrammeRequest(request_id=rid(), kind=ev.AID_KIND_ELDERLY, name="敬老",
                                                                budget=t.Money(fen=1_000_000)), metadata=admin)
    d = await s.DisburseAid(api.DisburseAidRequest(request_id=rid(), programme_id=prog.programme_id, resident_id="r-9",
                                                   amount=t.Money(fen=50_050)), metadata=admin)
    bad = await error_of(s.DisburseAid(api.DisburseAidRequest(request_id=rid(), programme_id=prog.programme_id,
                                                              resident_id="r-9", amount=t.Money(fen=0)), metadata=admin))
    assert "amount.fen" in field_violations(bad)
    over = await error_of(s.DisburseAid(api.DisburseAidRequest(request_id=rid(), programme_id=prog.programme_id,
                                                               resident_id="r-9", amount=t.Money(fen=2_000_000)),
                                        metadata=admin))
    assert over.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2,000,000 more asked (949,950 left)" in over.details()
    await s.ReverseDisbursement(api.ReverseDisbursementRequest(request_id=rid(), disbursement_id=d.disbursement_id,
                                                               reason="发错人"), metadata=admin)
    got = await s.GetDisbursement(api.GetDisbursementRequest(disbursement_id=d.disbursement_id), metadata=admin)
    assert got.disbursement.reversed and got.disbursement.amount.fen == 50_050
    progs = await s.ListAidProgrammes(api.ListAidProgrammesRequest(), metadata=admin)
    assert progs.programmes[0].disbursed.fen == 0
    got = await s.GetAidProgramme(api.GetAidProgrammeRequest(programme_id=prog.programme_id), metadata=admin)
    assert got.programme.budget.fen == 1_000_000
    conn = await asyncpg.connect(partners.dsn)
    types = [r[0] for r in await conn.fetch("SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version",
                                            f"disbursement-{d.disbursement_id}")]
    float_columns = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns WHERE "
                                     "table_schema = 'public' AND data_type IN ('real', 'double precision', 'numeric')")
    await conn.close()
    assert types == ["ganshou.partner_resource.v1.AidDisbursed", "ganshou.partner_resource.v1.AidDisbursementReversed"]
    assert float_columns == []


def test_money_is_never_a_float_in_any_message() -> None:
    """No float or double field anywhere in Ganshou's protobuf schemas (API and events);
    the metrics service's rates (fractions from 0 to 1) are the one exception."""
    load_all_schemas()
    floats = [f"{msg.full_name}.{f.name}"
              for name, mod in list(sys.modules.items())
              if name.startswith("ganshou.") and name.endswith("_pb2") and not name.startswith("ganshou.metrics.")
              for msg in mod.DESCRIPTOR.message_types_by_name.values() for f in msg.fields
              if f.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)]
    assert floats == []

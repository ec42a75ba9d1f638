"""The dunning run's sweep: every failed invoice without a case gets one — steps, chart flag, timeline,
and its day-0 messages queued — in batches, by the same rules as a failure a webhook reports one at
a time (the parity test holds the two to identical rows), and a second run, or a second worker
running at the same moment, opens nothing twice and sends nothing twice."""

import re
from datetime import timedelta

import pytest
from django.db import transaction

from billing import dunning
from billing.dunning import schedule
from billing.dunning.links import read_card_link
from billing.dunning.opening import failure_of_invoice, open_case_for_failure
from billing.dunning.policy import current_policy
from billing.models import (
    DunningCase,
    DunningMessage,
    DunningStep,
    Invoice,
    InvoiceStatus,
    MessageStatus,
    StepKind,
    StepStatus,
)
from integrations.models import Delivery
from memberships import selectors
from memberships.models import (
    AutomationStage,
    ChartFlag,
    Event,
    EventKind,
    Location,
    Membership,
    MembershipStatus,
)
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier

from .conftest import T0, emails_to, sms_to

DAY = timedelta(days=1)


def failed_invoice(membership, ref, *, code="insufficient_funds", hard=False, at=T0 - timedelta(minutes=5)):
    """A renewal the processor reported failed, as the inbox leaves it: the invoice mirrored as failed
    and the membership past due (no case: that is the sweep's to open)."""
    Membership.objects.filter(pk=membership.pk).update(status=MembershipStatus.PAST_DUE)
    return Invoice.objects.create(
        practice_id=membership.member.practice_id, membership=membership, processor_invoice_id=ref,
        amount_cents=19900, currency="usd", status=InvoiceStatus.OPEN, attempt_count=1, last_failure_code="card_declined",
        last_decline_code=code, hard_decline=hard, failed_at=at, created_at=at, updated_at=at)


@pytest.fixture
def members(member_factory, dunning_practice):
    """Five members of one practice, each a case the rules treat differently."""
    tokyo = Location.objects.create(practice=dunning_practice, name="Ginza", timezone="Asia/Tokyo")
    return {
        "consenting": member_factory(),
        "no_sms": member_factory(sms_consent=False),
        "unreachable": member_factory(sms_consent=False, email=""),
        "no_email": member_factory(email=""),
        "tokyo": member_factory(home_location=tokyo),   # 03:00 there: the SMS waits, the email goes
    }


def test_the_run_opens_every_new_case_and_queues_its_day_0_messages(members, settings):
    for name, membership in members.items():
        failed_invoice(membership, f"in_{name}", code="stolen_card" if name == "no_email" else "insufficient_funds")
    counts = dunning.run_dunning(now=T0)
    assert counts["opened"] == 5

    for name, membership in members.items():
        case = DunningCase.objects.get(invoice_ref=f"in_{name}")
        assert case.membership_id == membership.pk and case.amount_cents == 19900 and case.opened_at == T0
        assert [f.text for f in selectors.open_chart_flags(member=membership.member)] == [
            "Card declined — update card before treatment"]
        assert Event.objects.filter(member=membership.member, kind=EventKind.DUNNING_OPENED).count() == 1
    hard = DunningCase.objects.get(invoice_ref="in_no_email")
    assert hard.hard and not hard.steps.filter(kind=StepKind.RETRY).exists()   # a stolen card is never retried
    assert "call them" in Event.objects.get(member=members["unreachable"].member, kind=EventKind.DUNNING).summary

    channels = {name: sorted(DunningMessage.objects.filter(case__membership=m).values_list("channel", flat=True))
                for name, m in members.items()}
    assert channels == {"consenting": ["email", "sms"], "no_sms": ["email"], "unreachable": [],
                        "no_email": ["sms"], "tokyo": ["email"]}
    waiting = DunningStep.objects.get(case__invoice_ref="in_tokyo", kind=StepKind.SMS, number=0)
    assert waiting.status == StepStatus.PENDING and waiting.deferred_from == T0
    assert waiting.due_at == T0 + timedelta(hours=5)                       # 08:00 in Tokyo
    assert DunningCase.objects.get(invoice_ref="in_tokyo").next_action_at == waiting.due_at
    assert Delivery.objects.filter(destination="member_message").count() == 5

    # The outbox sends them; the next run finds nothing new and sends nothing twice.
    from integrations import outbox
    outbox.dispatch_due(now=T0)
    assert len(sms_to(members["consenting"].member)) == 1 and len(emails_to(members["consenting"].member)) == 1
    assert dunning.run_dunning(now=T0 + timedelta(minutes=5)) == {}
    assert DunningCase.objects.count() == 5 and DunningMessage.objects.count() == 5
    assert ChartFlag.objects.count() == 5


def test_what_the_sweep_leaves_alone(member_factory, dunning_practice):
    cancelled, paid, has_case = member_factory(), member_factory(), member_factory()
    failed_invoice(cancelled, "in_cancelled")
    Membership.objects.filter(pk=cancelled.pk).update(status=MembershipStatus.CANCELLED)
    failed_invoice(paid, "in_paid")
    Invoice.objects.filter(processor_invoice_id="in_paid").update(status=InvoiceStatus.PAID)
    failed_invoice(has_case, "in_has_case")
    case = open_case_for_failure(membership=has_case, invoice_ref="in_has_case", amount_cents=19900, now=T0,
                                 mark_past_due=False)
    dunning.run_dunning(now=T0)
    assert list(DunningCase.objects.values_list("invoice_ref", flat=True)) == ["in_has_case"]
    case.refresh_from_db()
    assert case.failure_count == 1


def test_below_the_dunning_stage_the_sweep_writes_shadowed_messages_that_never_leave(member_factory, dunning_practice):
    dunning_practice.automation_stage = AutomationStage.ALERTS
    dunning_practice.save()
    membership = member_factory()
    failed_invoice(membership, "in_alerts")
    assert dunning.run_dunning(now=T0) == {"opened": 1, "sms_shadowed": 1, "email_shadowed": 1}
    assert set(DunningMessage.objects.values_list("status", flat=True)) == {MessageStatus.SHADOWED}
    assert not Delivery.objects.filter(destination="member_message").exists()
    assert ChartFlag.objects.filter(member=membership.member).exists()


def test_a_member_whose_step_cannot_be_planned_is_noted_and_the_others_go_on(members, dunning_practice):
    mars = Location.objects.create(practice=dunning_practice, name="Olympus", timezone="UTC")
    Location.objects.filter(pk=mars.pk).update(timezone="Mars/Olympus")   # bad data that slipped in
    broken = members["consenting"]
    broken.member.home_location_id = mars.pk
    broken.member.save(update_fields=["home_location"])
    failed_invoice(broken, "in_broken")
    failed_invoice(members["no_sms"], "in_fine")
    counts = dunning.run_dunning(now=T0)
    assert counts["opened"] == 2 and counts["failed"] == 1
    stuck = DunningStep.objects.get(case__invoice_ref="in_broken", kind=StepKind.SMS, number=0)
    assert stuck.status == StepStatus.PENDING and stuck.note.startswith("failed, tried again next run")
    assert DunningMessage.objects.filter(case__invoice_ref="in_fine", channel="email").count() == 1
    assert DunningMessage.objects.filter(case__invoice_ref="in_broken", channel="email").count() == 1


# --- one at a time and in bulk: the same rows -------------------------------------------------------

def _snapshot():
    """Every row the opening and day 0 wrote, with ids replaced by what they stand for."""
    cases = {c.pk: c.invoice_ref for c in DunningCase.objects.all()}
    steps = {s.pk: (cases[s.case_id], s.key) for s in DunningStep.objects.all()}
    messages = {m.pk: (steps[m.step_id], m.channel) for m in DunningMessage.objects.all()}
    flags = {f.pk: f"flag of {cases[int(f.source_ref.split(':')[1])]}" for f in ChartFlag.objects.all()}

    def name_ids(value):
        if isinstance(value, dict):
            named = {"case_id": cases, "message_id": messages, "flag_id": flags}
            return {k: (str(named[k].get(v)) if k in named else name_ids(v)) for k, v in value.items()}
        if isinstance(value, str):
            value = re.sub(r"dunning-case:(\d+)", lambda m: f"case {cases[int(m.group(1))]}", value)
            value = re.sub(r"/billing/card/([^/\s]+)/",   # the signed card link: its case, whenever signed
                           lambda m: f"/billing/card/<case {cases[read_card_link(m.group(1)).case_id]}>/", value)
            return re.sub(r"message (\d+)", lambda m: f"message {messages[int(m.group(1))]}", value)
        return value

    def rows(queryset, drop, *ids):
        out = []
        for row in queryset.values():
            row = {k: name_ids(v) for k, v in row.items() if k not in drop}
            for field, table in ids:
                row[field] = str(table.get(row[field])) if row[field] is not None else None
            out.append(row)
        return sorted(out, key=repr)

    return {
        "cases": rows(DunningCase.objects.all(), {"id"}),
        "steps": rows(DunningStep.objects.all(), {"id"}, ("case_id", cases)),
        "messages": rows(DunningMessage.objects.all(), {"id"}, ("case_id", cases), ("step_id", steps)),
        "flags": rows(ChartFlag.objects.all(), {"id"}),
        "events": rows(Event.objects.filter(created_at=T0), {"id"}),
        "deliveries": sorted((d.destination, d.status, name_ids(d.event.payload).get("message_id"))
                             for d in Delivery.objects.filter(created_at=T0).select_related("event")),
    }


class Undo(Exception):
    pass


def _written_by(write):
    try:
        with transaction.atomic():
            write()
            snapshot = _snapshot()
            raise Undo
    except Undo:
        return snapshot


def test_one_at_a_time_and_the_sweep_write_identical_rows(members, dunning_practice):
    other = PracticeFactory(slug="below-dunning", automation_stage=AutomationStage.ALERTS,
                            timezone="America/New_York")
    shadowed = active_membership(tier=glow_tier(other)[0], member=MemberFactory(practice=other),
                                 now=T0 - 30 * DAY)
    for practice in (dunning_practice, other):
        current_policy(practice=practice, now=T0 - DAY)
    for name, membership in [*members.items(), ("shadowed", shadowed)]:
        failed_invoice(membership, f"in_{name}", code="lost_card" if name == "no_sms" else "do_not_honor")

    def one_at_a_time():
        for invoice in Invoice.objects.select_related("membership__member").order_by("id"):
            item = failure_of_invoice(invoice, mark_past_due=False, now=T0)
            open_case_for_failure(membership=invoice.membership, invoice_ref=item.invoice_ref,
                                  amount_cents=item.amount_cents, currency=item.currency,
                                  decline_code=item.decline_code, hard=item.hard, failed_at=item.failed_at,
                                  mark_past_due=False, now=T0)
        for step_id in DunningStep.objects.filter(due_at__lte=T0).order_by("due_at", "number", "id").values_list(
                "pk", flat=True):
            schedule.run_step(step_id, now=T0)            # the one-at-a-time path of every step

    def sweep():
        dunning.run_dunning(now=T0)

    single, bulk = _written_by(one_at_a_time), _written_by(sweep)
    assert len(single["cases"]) == 6 and len(single["messages"]) >= 6
    for table in single:
        assert single[table] == bulk[table], table


@pytest.mark.parametrize("bad", [{"invoice_ref": ""}, {"amount_cents": -1}, {"amount_cents": "19900"},
                                 {"amount_cents": 199.0}, {"amount_cents": True}],
                         ids=["no invoice", "negative", "text", "float", "bool"])
def test_a_bad_failure_is_refused_with_a_clear_error_and_changes_nothing(membership, bad):
    values = {"invoice_ref": "in_bad", "amount_cents": 19900, **bad}
    with pytest.raises(ValueError, match="invoice_ref is required|whole number of cents"):
        open_case_for_failure(membership=membership, now=T0, **values)
    assert not DunningCase.objects.exists() and not ChartFlag.objects.exists()
    assert not Event.objects.filter(created_at=T0).exists()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE

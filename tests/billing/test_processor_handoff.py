"""Dunning hears the processor path through `billing.dunning_hooks`: whatever the number and order of the
failure facts, one case; a paid invoice closes it."""

from datetime import timedelta

from billing import services as billing_services
from billing.facts import ChargeFailed, ChargeSucceeded
from billing.models import DunningCase, DunningCaseStatus
from memberships import selectors
from memberships.models import EventKind, MembershipStatus

from .conftest import T0


def facts(membership, *, attempt, code="insufficient_funds", created=1767636000):
    common = dict(processor="stripe", invoice_ref="in_9", subscription_ref="sub_9", customer_ref="cus_test",
                  membership_ref=f"ms_{membership.pk}", amount_cents=19900, currency="usd", attempt_count=attempt,
                  period_start=None, period_end=None, created=created, event_created=created + attempt * 100,
                  event_ref=f"evt_{attempt}", billing_reason="subscription_cycle")
    return common


def failed(membership, attempt, code="insufficient_funds"):
    return ChargeFailed(failure_code="card_declined", decline_code=code, hard=code == "lost_card",
                        **facts(membership, attempt=attempt))


def test_failures_in_any_order_make_one_case_and_payment_closes_it(membership):
    membership.processor_subscription_id = "sub_9"
    membership.save(update_fields=["processor_subscription_id"])
    billing_services.record_charge_failed(charge=failed(membership, 2), now=T0 + timedelta(days=3))
    billing_services.record_charge_failed(charge=failed(membership, 1), now=T0 + timedelta(days=3, hours=1))
    billing_services.record_charge_failed(charge=failed(membership, 2), now=T0 + timedelta(days=3, hours=2))
    case = DunningCase.objects.get()
    assert case.invoice_ref == "in_9" and case.amount_cents == 19900 and not case.hard
    assert membership.events.filter(kind=EventKind.DUNNING_OPENED).count() == 1
    billing_services.record_charge_failed(charge=failed(membership, 3, "lost_card"), now=T0 + timedelta(days=5))
    case.refresh_from_db()
    assert case.hard and case.decline_code == "lost_card"

    billing_services.record_charge_succeeded(
        charge=ChargeSucceeded(amount_paid_cents=19900, paid_at=T0 + timedelta(days=6), **facts(membership, attempt=4)),
        now=T0 + timedelta(days=6))
    case.refresh_from_db()
    membership.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    assert membership.status == MembershipStatus.ACTIVE
    assert list(selectors.open_chart_flags(member=membership.member)) == []
    # A late failure of the paid invoice changes nothing.
    billing_services.record_charge_failed(charge=failed(membership, 4), now=T0 + timedelta(days=7))
    assert DunningCase.objects.get().status == DunningCaseStatus.RECOVERED


def test_chart_panel_shows_the_stored_flag(membership, front_desk):
    from memberships.selectors import chart_panel

    membership.processor_subscription_id = "sub_9"
    membership.save(update_fields=["processor_subscription_id"])
    billing_services.record_charge_failed(charge=failed(membership, 1), now=T0)
    panel = chart_panel(member_id=membership.member_id, user=front_desk, now=T0)
    assert [f.label for f in panel.flags] == ["Card declined — update card before treatment"]

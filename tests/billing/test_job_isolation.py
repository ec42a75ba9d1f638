"""One practice's bad data never stops the periodic jobs for the others: a time zone must be an IANA
name to be saved; a dunning case whose step raises is logged, noted on the step and retried next
run while the other practices' cases go on; the nightly reconciliation runs every practice it can."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from billing import dunning, tasks
from billing.models import DunningStep, ImportBatch, ReconciliationRun, SheetRow, StepStatus, StepKind
from memberships.models import AutomationStage, Location, Practice
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier

from .conftest import T0, emails_to, fail, sms_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_practice(db):
    """A second practice in the dunning stage, on the east coast."""
    practice = PracticeFactory(slug="bloom", name="Bloom Skin", timezone="America/New_York",
                               automation_stage=AutomationStage.DUNNING)
    glow_tier(practice)
    return practice


def member_of(practice, **kwargs):
    tier = practice.tiers.get(code="glow")
    member = MemberFactory(practice=practice, processor_customer_id="cus_test", **kwargs)
    return active_membership(tier=tier, member=member, now=T0 - timedelta(days=30))


# --- the time zone is checked where it is saved ---------------------------------------------------

@pytest.mark.parametrize("name", ["Pacific Time", "PST8PDT ", "America/Los Angeles", "../../etc/passwd"])
def test_a_time_zone_that_is_not_an_iana_name_cannot_be_saved(practice, name):
    practice.timezone = name
    with pytest.raises(ValidationError) as refused:
        practice.full_clean()
    assert "is not an IANA time zone name" in refused.value.message_dict["timezone"][0]
    location = Location(practice=practice, name="Downtown", timezone=name)
    with pytest.raises(ValidationError):
        location.full_clean()


def test_iana_names_and_an_empty_location_zone_are_accepted(practice):
    for name in ("America/Los_Angeles", "Europe/London", "UTC"):
        practice.timezone = name
        practice.full_clean()
    Location(practice=practice, name="Downtown", timezone="").full_clean()


def admin_form_data(practice, **changes):
    data = {
        "name": practice.name, "slug": practice.slug, "timezone": practice.timezone,
        "currency": practice.currency, "automation_stage": practice.automation_stage,
        "redemption_when_past_due": practice.redemption_when_past_due,
        "frozen_credit_usable_until_period_end": "on", "record_adapter": practice.record_adapter,
        "record_config": "{}", "record_webhook_secret": practice.record_webhook_secret,
        "quiet_hours_start": "21:00", "quiet_hours_end": "08:00",
        "member_pause_max_days": practice.member_pause_max_days, "processor": practice.processor,
    }
    return {**data, **changes}


def test_the_admin_refuses_a_free_text_time_zone_and_offers_the_iana_names(admin_client, practice):
    url = f"/admin/memberships/practice/{practice.pk}/change/"
    page = admin_client.get(url)
    assert 'list="iana-time-zones"' in page.content.decode()
    assert '<option value="America/Los_Angeles">' in page.content.decode()

    refused = admin_client.post(url, admin_form_data(practice, timezone="Pacific Time"))
    assert refused.status_code == 200
    assert "Pacific Time is not an IANA time zone name" in refused.content.decode()
    practice.refresh_from_db()
    assert practice.timezone == "America/Los_Angeles"

    saved = admin_client.post(url, admin_form_data(practice, timezone="America/Denver"))
    assert saved.status_code == 302
    practice.refresh_from_db()
    assert practice.timezone == "America/Denver"


# --- the dunning run isolates each case ------------------------------------------------------------

def test_a_case_whose_step_raises_does_not_stop_the_other_practices_case(dunning_practice, glow, other_practice,
                                                                        caplog):
    # A zone saved before names were checked: quiet hours cannot be computed for this practice.
    Practice.objects.filter(pk=dunning_practice.pk).update(timezone="Pacific Time")
    broken = member_of(dunning_practice)
    fine = member_of(other_practice)
    broken_case = fail(broken, invoice="in_broken", now=T0 - timedelta(hours=1))   # first in the queue
    fine_case = fail(fine, invoice="in_fine", now=T0)

    counts = dunning.run_dunning(now=T0)
    from integrations import outbox

    outbox.dispatch_due(now=T0)

    assert counts["failed"] == 1
    assert len(sms_to(fine.member)) == 1 and len(emails_to(fine.member)) == 1   # the other practice: untouched
    assert len(emails_to(broken.member)) == 1 and sms_to(broken.member) == []    # its email step went too
    stuck = DunningStep.objects.get(case=broken_case, number=0, kind=StepKind.SMS)
    assert stuck.status == StepStatus.PENDING
    assert "ZoneInfoNotFoundError" in stuck.note
    assert not DunningStep.objects.filter(case=fine_case, number=0, status=StepStatus.PENDING).exists()
    assert f"dunning step {stuck.pk} failed" in caplog.text

    # Once the practice's zone is corrected, the next run sends what was held up.
    Practice.objects.filter(pk=dunning_practice.pk).update(timezone="America/Los_Angeles")
    dunning.run_dunning(now=T0 + timedelta(minutes=5))
    outbox.dispatch_due(now=T0 + timedelta(minutes=5))
    stuck.refresh_from_db()
    assert stuck.status == StepStatus.DONE and len(sms_to(broken.member)) == 1


# --- the nightly reconciliation runs practice by practice ------------------------------------------

def test_nightly_reconciliation_goes_on_after_a_practice_fails(glow, practice, other_practice, caplog):
    broken = member_of(practice)
    member_of(other_practice)
    batch = ImportBatch.objects.create(practice=practice, file_name="members.csv", sha256="0" * 64, content=b"",
                                       created_at=T0)
    # A sheet row whose balances are not a mapping (written by hand or by an older release).
    SheetRow.objects.create(practice=practice, member=broken.member, member_number=broken.member.member_number,
                            batch=batch, line=2, tier_code="glow", status="active", price_cents=19900,
                            balances=["hydrafacial"], row_hash="x", imported_at=T0)

    results = tasks.reconcile_nightly()

    assert results == {practice.slug: "failed", other_practice.slug: 0}
    assert list(ReconciliationRun.objects.values_list("practice__slug", flat=True)) == [other_practice.slug]
    assert f"nightly reconciliation of practice {practice.pk} failed" in caplog.text


def test_a_step_that_keeps_failing_goes_behind_the_steps_due_by_the_next_run(dunning_practice, glow, other_practice):
    """With a run limited to one step, failing steps first in the queue do not hold it: each is due
    again at the next run, behind what was due before then, so the other practice's case goes out."""
    Practice.objects.filter(pk=dunning_practice.pk).update(timezone="Pacific Time")
    broken = member_of(dunning_practice)
    fine = member_of(other_practice)
    fail(broken, invoice="in_broken", now=T0 - timedelta(hours=1))
    fail(fine, invoice="in_fine", now=T0)
    due_now = DunningStep.objects.filter(status=StepStatus.PENDING, due_at__lte=T0).count()
    for _ in range(due_now):
        dunning.run_dunning(now=T0, limit=1)
    failed = DunningStep.objects.filter(case__invoice_ref="in_broken", note__startswith="failed")
    assert failed.exists() and all(step.due_at == T0 + timedelta(minutes=5) for step in failed)
    assert not DunningStep.objects.filter(case__invoice_ref="in_fine", number=0, status=StepStatus.PENDING).exists()

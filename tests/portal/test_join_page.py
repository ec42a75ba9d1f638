"""The public join page: what a visitor sees, what a valid form starts (a join on file and the
processor's hosted page, nothing else), and what it refuses — below `tier_sync`, the honeypot, the
rate limit, a stale agreement, a missing CSRF token."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from integrations.processors.base import ProcessorUnavailable
from memberships.models import JoinAttempt, Member, Membership
from memberships.services.joining import purge_abandoned_joins
from tests.factories import TierFactory

from .join_support import form, online, processor  # noqa: F401  (fixtures)

URL = "/join/glow/"


def test_the_page_lists_the_tiers_offered_online_in_the_charts_words(client, online, processor):
    TierFactory(practice=online["practice"], name="Staff only", offered_online=False)
    body = client.get(URL).content.decode()
    assert "Glow" in body and "$199.00/month" in body
    assert "1 × HydraFacial per month; carries over, up to 2" in body
    assert "$50.00 × Product credit per month; use it or lose it each cycle" in body
    assert "Staff only" not in body
    assert "Monthly membership; cancel with 30 days" in body and "Old terms." not in body and "Draft" not in body
    assert 'name="sms_consent"' in body and 'name="sms_consent" checked' not in body


def test_a_valid_form_keeps_the_join_and_sends_the_member_to_the_hosted_page(client, online, processor):
    response = client.post(URL, form(online, sms_consent="on"), REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_fake0001")
    attempt = JoinAttempt.objects.get()
    assert (attempt.email, attempt.phone, attempt.first_name) == ("nora.newman@example.com", "+14155550177", "Nora")
    assert attempt.agreement == online["agreement"] and attempt.ip_address == "203.0.113.9"
    assert attempt.accepted_at is not None and attempt.checkout_ref == "cs_test_fake0001"
    assert attempt.sms_consent_text.startswith("I agree to receive text messages from Glow Aesthetics")
    [checkout] = processor.checkouts
    assert checkout["join_ref"] == attempt.ref and checkout["email"] == "nora.newman@example.com"
    assert checkout["idempotency_key"] == f"join:{attempt.ref}"
    assert checkout["success_url"].endswith(f"/join/glow/done/{attempt.ref}/")
    assert not Member.objects.exists() and not Membership.objects.exists()   # only the processor's word enrolls


def test_no_consent_ticked_stores_no_consent_text(client, online, processor):
    client.post(URL, form(online))
    assert JoinAttempt.objects.get().sms_consent_text == ""


def test_below_tier_sync_the_page_sends_people_to_the_front_desk_and_starts_nothing(client, online, processor):
    practice = online["practice"]
    practice.automation_stage = "redemptions"
    practice.save(update_fields=["automation_stage"])
    body = client.get(URL).content.decode()
    assert "ask the front desk" in body and "join-form" not in body
    assert "Glow" in body and "$199.00/month" in body
    response = client.post(URL, form(online))
    assert response.status_code == 200 and "ask the front desk" in response.content.decode()
    assert not JoinAttempt.objects.exists() and processor.checkouts == []


def test_the_honeypot_refuses_and_starts_nothing(client, online, processor):
    response = client.post(URL, form(online, website="http://spam.example"))
    assert response.status_code == 400
    assert not JoinAttempt.objects.exists() and processor.checkouts == []


def test_the_rate_limit_refuses_an_address_after_its_allowance(client, online, processor, settings):
    settings.JOIN_RATE_LIMIT = 2
    for n in range(2):
        assert client.post(URL, form(online, email=f"p{n}@example.com"), REMOTE_ADDR="198.51.100.7").status_code == 302
    refused = client.post(URL, form(online, email="p3@example.com"), REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    assert JoinAttempt.objects.count() == 2 and len(processor.checkouts) == 2
    # another address is not held up
    assert client.post(URL, form(online, email="p4@example.com"), REMOTE_ADDR="198.51.100.8").status_code == 302


def test_the_rate_limit_window_passes(client, online, processor, settings):
    settings.JOIN_RATE_LIMIT = 1
    client.post(URL, form(online), REMOTE_ADDR="198.51.100.7")
    JoinAttempt.objects.update(created_at=timezone.now() - timedelta(minutes=61))
    assert client.post(URL, form(online), REMOTE_ADDR="198.51.100.7").status_code == 302


def test_an_agreement_updated_while_reading_must_be_read_again(client, online, processor):
    response = client.post(URL, form(online, agreement_version="1"))
    assert response.status_code == 409 and "read it again" in response.content.decode()
    assert not JoinAttempt.objects.exists() and processor.checkouts == []


@pytest.mark.parametrize("missing", ["accept_agreement", "tier", "phone", "email"])
def test_a_form_missing_a_required_answer_starts_nothing(client, online, processor, missing):
    response = client.post(URL, form(online, **{missing: None}))
    assert response.status_code == 400
    assert not JoinAttempt.objects.exists() and processor.checkouts == []


def test_a_tier_not_offered_online_cannot_be_posted(client, online, processor):
    hidden = TierFactory(practice=online["practice"], offered_online=False)
    assert client.post(URL, form(online, tier=str(hidden.pk))).status_code == 400
    assert not JoinAttempt.objects.exists()


def test_csrf_is_required(online, processor):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(URL, form(online)).status_code == 403
    assert not JoinAttempt.objects.exists()


def test_processor_down_keeps_nothing(client, online, processor):
    processor.fail_with = ProcessorUnavailable("down")
    response = client.post(URL, form(online))
    assert response.status_code == 503 and "Nothing was charged" in response.content.decode()
    assert not JoinAttempt.objects.exists()


def test_an_unknown_practice_is_404(client, db):
    assert client.get("/join/nowhere/").status_code == 404


def test_the_return_pages_change_nothing_and_show_no_personal_data(client, online, processor):
    client.post(URL, form(online))
    attempt = JoinAttempt.objects.get()
    for _ in range(2):
        body = client.get(f"/join/glow/done/{attempt.ref}/").content.decode()
        assert "confirming your payment" in body and "Nora" not in body
    assert client.get(f"/join/glow/cancelled/{attempt.ref}/").status_code == 200
    assert JoinAttempt.objects.count() == 1 and not Membership.objects.exists()
    assert client.get("/join/glow/done/jn_not_ours/").status_code == 404


def test_abandoned_joins_are_purged_after_the_retention(client, online, processor):
    client.post(URL, form(online, email="old@example.com"))
    client.post(URL, form(online, email="new@example.com"))
    JoinAttempt.objects.filter(email="old@example.com").update(created_at=timezone.now() - timedelta(hours=25))
    assert purge_abandoned_joins(now=timezone.now(), older_than=timedelta(hours=24)) == 1
    assert list(JoinAttempt.objects.values_list("email", flat=True)) == ["new@example.com"]


def test_the_page_lets_its_form_reach_stripe_checkout_and_nowhere_else(client, online, processor, settings):
    settings.STRIPE_API_BASE = ""
    policy = client.get(URL)["Content-Security-Policy"]
    form_action = next(d for d in policy.split(";") if d.strip().startswith("form-action"))
    assert form_action.split()[1:] == ["'self'", "https://checkout.stripe.com"]


def test_the_demo_has_a_join_page(client, db):
    from django.core.management import call_command

    from memberships.models import Practice

    call_command("seed_demo", members=3)
    body = client.get("/join/glow-aesthetics/").content.decode()
    assert "Glow" in body and "Luxe" in body and "Essentials" not in body and "ask the front desk" in body
    Practice.objects.filter(slug="glow-aesthetics").update(automation_stage="tier_sync")
    body = client.get("/join/glow-aesthetics/").content.decode()
    assert "join-form" in body and "Glow Aesthetics membership agreement" in body


def test_a_mobile_written_as_people_write_it_at_home_is_taken_where_the_practice_is(client, online, processor,  # noqa: F811
                                                                                   settings):
    """A practice outside the US (IMPORT_PHONE_REGION) gets its members' national numbers, as the
    member page's "send me a link" takes them."""
    from portal.me.links import normalise_address

    settings.IMPORT_PHONE_REGION = "GB"
    assert client.post(URL, form(online, phone="07911 123456")).status_code == 302
    assert JoinAttempt.objects.get().phone == "+447911123456" == normalise_address("07911 123456")

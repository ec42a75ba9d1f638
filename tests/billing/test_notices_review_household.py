"""A household: two members of one practice sharing a mobile number and an email address, on two
tiers, renewing the same day. Each notice says whose membership it is about (the first name, never
the tier or a treatment), so the texts "renews on Jan 10 for $199.00" and "… for $349.00" on one
phone are not a puzzle; a member with a number of her own is addressed as before."""

import pytest
from django.core import mail

from billing.notices import wording
from integrations.messaging import sms
from memberships.models import Membership

from ..factories import MemberFactory, TierFactory, active_membership
from .test_notices import BOUNDARY, LINK, T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_a_household_sharing_a_phone_and_an_email_is_told_whose_membership_renews(enroll, notice_practice):  # noqa: F811
    ana = enroll(first_name="Ana", phone="+14155550100", email="garcia.home@example.com")
    luxe = TierFactory(practice=notice_practice, code="luxe", name="Luxe", price_cents=34900)
    ben = MemberFactory(practice=notice_practice, first_name="Ben", phone="+14155550100",
                        email="Garcia.Home@example.com")
    bens = active_membership(tier=luxe, member=ben, now=T0)
    Membership.objects.filter(pk=bens.pk).update(current_period_end=BOUNDARY)
    alone = enroll(first_name="Cy")

    run(T0)

    texts = sorted(m.body for m in sms.outbox if m.to == "+14155550100" and "renews" in m.body)
    assert texts == [
        f"Glow Aesthetics: Ana's membership renews on Jan 10 for $199.00. Details: {LINK} Reply STOP to opt out.",
        f"Glow Aesthetics: Ben's membership renews on Jan 10 for $349.00. Details: {LINK} Reply STOP to opt out.",
    ]
    assert all(len(m.body) <= 160 for m in sms.outbox)
    assert f"Glow Aesthetics: Ana has membership benefits that expire on Jan 10 - see them: {LINK} " \
           "Reply STOP to opt out." in [m.body for m in sms.outbox]
    subjects = sorted(m.subject for m in mail.outbox if m.to[0].lower() == "garcia.home@example.com")
    assert "Glow Aesthetics: Ana's membership renews on Jan 10" in subjects
    assert "Glow Aesthetics: Ben's membership renews on Jan 10" in subjects
    for text in [m.body for m in sms.outbox] + [m.subject + m.body for m in mail.outbox]:
        assert "Luxe" not in text and "HydraFacial" not in text
    own = [m.body for m in sms.outbox if m.to == alone.member.phone and "renews" in m.body]
    assert own == [f"Glow Aesthetics: your membership renews on Jan 10 for $199.00. Details: {LINK} "
                   "Reply STOP to opt out."]
    assert ana.member.phone == ben.phone


def test_a_name_that_would_break_the_text_into_segments_is_left_out(enroll, notice_practice):  # noqa: F811
    enroll(first_name="Łucja", phone="+14155550111")
    enroll(first_name="Marta", phone="+14155550111")
    run(T0)
    renewals = sorted(m.body for m in sms.outbox if "renews" in m.body)
    assert renewals[0].startswith("Glow Aesthetics: Marta's membership renews")
    assert renewals[1].startswith("Glow Aesthetics: your membership renews")


def test_a_name_that_would_make_the_text_too_long_is_left_out(enroll, notice_practice):  # noqa: F811
    notice_practice.name = "Glow Aesthetics Santa Monica"
    notice_practice.save()
    enroll(first_name="Maximilianoalexande", phone="+14155550122")
    enroll(first_name="Bo", phone="+14155550122")
    run(T0)
    assert all(len(m.body) <= 160 for m in sms.outbox)
    expiring = sorted(m.body for m in sms.outbox if "expire" in m.body)
    assert [body.split(" membership")[0] for body in expiring] == [
        "Glow Aesthetics Santa Monica: Bo has", "Glow Aesthetics Santa Monica: you have"]


def test_an_accented_name_is_texted_without_its_accents_and_emailed_as_written(enroll, notice_practice):  # noqa: F811
    """'Zoë' is outside GSM-7 (the text would go as UCS-2, several segments): the text says 'Zoe's';
    the email, which has no such limit, says 'Zoë's'. 'Łucja' has no plain form: left out of the text
    (test above) but named in the email."""
    enroll(first_name="Zoë", phone="+14155550133", email="family@example.com")
    enroll(first_name="Łucja", phone="+14155550133", email="family@example.com")
    run(T0)
    renewals = sorted(m.body.split(" membership")[0] for m in sms.outbox if "renews" in m.body)
    assert renewals == ["Glow Aesthetics: Zoe's", "Glow Aesthetics: your"]
    assert all(set(m.body) <= wording.GSM7 and len(m.body) <= 160 for m in sms.outbox)
    subjects = sorted(m.subject for m in mail.outbox if "renews" in m.subject)
    assert subjects == ["Glow Aesthetics: Zoë's membership renews on Jan 10",
                        "Glow Aesthetics: Łucja's membership renews on Jan 10"]

"""A member's SMS reply, read the way people write them (issue 19, medium 3): a plain opt-out in any
reasonable wording is recorded at once; a reply that looks like a refusal holds the member's
automated texts until a person at the practice reads it; anything else changes nothing. The text is
never logged."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.models import DunningMessage, MessageStatus
from integrations.messaging import replies
from integrations.models import Delivery, InboundEvent, SmsHold, SmsHoldOutcome
from memberships.models import AuditLog, Event
from tests.billing.conftest import T0, emails_to, fail, sms_to, tick
from tests.support.twilio import post_signed

S, R, G, O = replies.STOP, replies.REVIEW, replies.START, replies.OTHER

PHRASINGS = [
    # Plain opt-outs, however written: recorded at once.
    ("STOP", S), ("stop", S), ("Stop.", S), (" stop ", S), ("STOP!!!", S), ("Stop please", S),
    ("STOP please", S), ("please stop", S), ("Please stop texting me", S), ("stop texting me", S),
    ("Stop texting me!", S), ("stop sending me messages", S), ("opt out", S), ("Opt-out", S), ("OPTOUT", S),
    ("opt me out", S), ("Unsubscribe", S), ("unsubscribe me please", S), ("STOP ALL", S), ("stopall", S),
    ("Cancel", S), ("END", S), ("quit", S), ("Quit texting me", S), ("Revoke", S), ("ＳＴＯＰ", S),
    ("Stop. I already paid", S), ("I already paid, stop", S), ("Stop 🙏", S), ("stop it now thanks", S),
    ("Stop, wrong person", S),
    # Spelled out, disguised or with invisible characters: still a plain opt-out.
    ("S T O P", S), ("s.t.o.p", S), ("S-T-O-P please", S), ("\u0405\u0422\u041e\u0420", S),  # Cyrillic ЅТОР
    ("St\u03bfp", S), ("s\u200btop", S), ("ST0P", S), ("U N S U B S C R I B E", S),
    # Refusals in other words, or a keyword used another way: a person reads them.
    ("Can I stop by at 3?", R), ("stop by tomorrow?", R), ("Cancel my appointment tomorrow", R),
    ("cancel my membership", R), ("I'll pay at the end of the month", R), ("Don't text me", R),
    ("do not text me again", R), ("Leave me alone", R), ("remove me from your list", R), ("No more messages", R),
    ("Wrong number", R), ("wrong number sorry", R), ("not interested", R), ("Take me off your list", R),
    ("Please stop texting me so late", R),
    ("I asked you to STOP texting me weeks ago and you keep sending these, this is the last time I ask", R),
    ("Why do you keep texting? Stop", R),
    # Re-consent, as Twilio reads it: the keyword alone.
    ("START", G), ("start", G), ("Unstop", G), ("YES", G), ("yes please", G),
    # Nothing to do.
    ("Thanks, will do", O), ("ok", O), ("I updated my card", O), ("Yes I'll pay tomorrow", O),
    ("Who is this?", O), ("", O), ("Nonstop fun at the spa", O), ("Send me the link again", O), ("Plan B is fine", O), ("See you at 10", O),
]


@pytest.mark.parametrize(("text", "kind"), PHRASINGS)
def test_each_phrasing_is_read_as_people_mean_it(text, kind):
    assert replies.classify(text).kind == kind


def test_the_table_covers_enough_real_phrasings():
    assert len(PHRASINGS) >= 30
    assert {kind for _, kind in PHRASINGS} == {S, R, G, O}


def _texted(membership):
    fail(membership)
    tick(T0)
    assert len(sms_to(membership.member)) == 1


@pytest.mark.parametrize("body", ["Stop.", "STOP please", "opt out", "please stop texting me"])
def test_the_issues_phrasings_opt_out_at_once_and_dunning_texts_stop(client, membership, body):
    member = membership.member
    _texted(membership)
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_stop", "From": member.phone, "Body": body})
    member.refresh_from_db()
    assert member.sms_opted_out_at is not None and not member.can_receive_sms
    tick(T0 + timedelta(days=3))  # the next dunning step
    assert len(sms_to(member)) == 1  # no second text
    assert emails_to(member)  # the step went by email instead
    assert not SmsHold.objects.exists()


def test_a_refusal_holds_texts_until_a_person_says_it_is_an_opt_out(client, membership, front_desk, caplog):
    member = membership.member
    _texted(membership)
    caplog.set_level(logging.DEBUG)
    post_signed(client, "/webhooks/twilio/inbound/",
                {"MessageSid": "SM_r", "From": member.phone, "Body": "Leave me alone, Botox was enough"})
    member.refresh_from_db()
    assert member.sms_opted_out_at is None  # not recorded as an opt-out by itself
    hold = SmsHold.objects.get(member=member, cleared_at__isnull=True)
    # The text is for the person who reads it; never in a log line, an event or the inbox.
    assert "Botox" not in caplog.text and "alone" not in caplog.text.lower()
    assert all("Botox" not in str(e.payload) and "Botox" not in e.summary for e in Event.objects.all())
    assert all("Botox" not in str(row.payload) for row in InboundEvent.objects.all())

    tick(T0 + timedelta(days=3))  # the next step: its SMS waits, its email goes
    assert len(sms_to(member)) == 1
    held = Delivery.objects.filter(destination="member_message", status="pending",
                                   event__payload__channel="sms").count()
    assert held == 1

    client.force_login(front_desk)
    page = client.get(reverse("sms_replies:list"))
    assert page.status_code == 200 and "Botox was enough" in page.content.decode()
    assert AuditLog.objects.filter(user=front_desk, action="sms_replies_view", member=member).count() == 1
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        client.post(reverse("sms_replies:clear", args=[hold.pk]), {"decision": "opt_out"})
    hold.refresh_from_db()
    member.refresh_from_db()
    assert hold.outcome == SmsHoldOutcome.OPTED_OUT and hold.cleared_by == front_desk
    assert member.sms_opted_out_at is not None
    assert AuditLog.objects.filter(user=front_desk, action="sms_hold_clear").count() == 1
    tick(T0 + timedelta(days=3, minutes=1))
    assert len(sms_to(member)) == 1  # the held SMS never went
    assert DunningMessage.objects.filter(channel="sms", status=MessageStatus.SKIPPED).exists()
    # A second click changes nothing and audits nothing.
    client.post(reverse("sms_replies:clear", args=[hold.pk]), {"decision": "resume"})
    hold.refresh_from_db()
    assert hold.outcome == SmsHoldOutcome.OPTED_OUT
    assert AuditLog.objects.filter(action="sms_hold_clear").count() == 1


def test_not_an_opt_out_sends_the_held_text_at_once(client, membership, front_desk):
    member = membership.member
    _texted(membership)
    post_signed(client, "/webhooks/twilio/inbound/",
                {"MessageSid": "SM_q", "From": member.phone, "Body": "Can I stop by at 3?"})
    hold = SmsHold.objects.get(member=member)
    tick(T0 + timedelta(days=3))
    assert len(sms_to(member)) == 1
    client.force_login(front_desk)
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        client.post(reverse("sms_replies:clear", args=[hold.pk]), {"decision": "resume"})
    tick(T0 + timedelta(days=3, minutes=1))  # at once, not at the next re-check
    assert len(sms_to(member)) == 2
    member.refresh_from_db()
    assert member.can_receive_sms


def test_a_decision_needs_a_choice(client, membership, front_desk):
    member = membership.member
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_w", "From": member.phone, "Body": "wrong number"})
    hold = SmsHold.objects.get(member=member)
    client.force_login(front_desk)
    client.post(reverse("sms_replies:clear", args=[hold.pk]), {})
    hold.refresh_from_db()
    assert hold.cleared_at is None


def test_a_second_refusal_adds_to_the_open_hold(client, membership):
    member = membership.member
    for sid, body in (("SM_1", "wrong number"), ("SM_2", "seriously, leave me alone")):
        post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": sid, "From": member.phone, "Body": body})
    [hold] = SmsHold.objects.filter(member=member)
    assert "wrong number" in hold.text and "leave me alone" in hold.text


def test_the_page_is_the_practices_own(client, membership, clinician):
    from tests.factories import MemberFactory, PracticeFactory, staff_user
    from memberships.roles import FRONT_DESK

    member = membership.member
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_x", "From": member.phone, "Body": "remove me"})
    hold = SmsHold.objects.get(member=member)
    client.force_login(clinician)
    assert client.get(reverse("sms_replies:list")).status_code == 403
    other = PracticeFactory(slug="elsewhere")
    MemberFactory(practice=other)
    client.force_login(staff_user(FRONT_DESK, other))
    assert "remove me" not in client.get(reverse("sms_replies:list")).content.decode()
    assert client.post(reverse("sms_replies:clear", args=[hold.pk]), {"decision": "resume"}).status_code == 404
    hold.refresh_from_db()
    assert hold.cleared_at is None

"""The text that carries a member-page link is written in the GSM-7 alphabet: one character outside
it (an em dash) makes the whole message UCS-2, 67 characters a segment instead of 153, and the
link's text twice as many paid segments."""

import pytest

from integrations.messaging import sms
from tests.factories import ana_garcia
from tests.portal.me_support import send_link

pytestmark = pytest.mark.django_db

GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")


def test_the_link_text_is_gsm7(glow):
    member, _ = ana_garcia(glow[0])
    before = len(sms.outbox)
    assert send_link(member.phone)
    [text] = sms.outbox[before:]
    assert set(text.body) <= GSM7, sorted(set(text.body) - GSM7)


def test_two_members_of_one_household_each_tell_their_own_link_before_spending_it(client, glow):
    """Mother and daughter share an email: both links arrive there; each link's page names whose
    page it opens, so the one who asked opens hers and leaves the other's unspent."""
    from tests.factories import MemberFactory

    practice = glow[0].practice
    MemberFactory(practice=practice, first_name="Ruth", last_name="Newman", email="newmans@example.com")
    MemberFactory(practice=practice, first_name="Nora", last_name="Newman", email="newmans@example.com")
    paths = send_link("newmans@example.com")
    assert len(paths) == 2
    pages = [client.get(path).content.decode() for path in paths]
    named = [{name for name in ("Ruth", "Nora") if name in page} for page in pages]
    assert sorted(map(sorted, named)) == [["Nora"], ["Ruth"]]
    from memberships.models import AuditLog

    assert AuditLog.objects.filter(action="member_link_view").count() == 2     # each page named a member


def test_an_expired_link_says_how_long_links_work_as_the_practice_set_it(client, glow, settings):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    settings.PORTAL_LINK_MINUTES = 30
    member, _ = ana_garcia(glow[0])
    sent_at = timezone.now()
    [path] = send_link(member.email, now=sent_at)
    with time_machine.travel(sent_at + timedelta(minutes=31), tick=False):
        page = client.post(path).content.decode()
    assert "Links work for 30 minutes" in page

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

import re
from datetime import timedelta

from django.core import mail
from django.urls import reverse
from django.utils import timezone

from integrations.outbox import dispatch_due
from portal.me import links
from portal.models import LinkRequest

LINK = re.compile(r"https?://[^\s]+/me/open/(\d+)/([0-9a-f]+)/")


def send_link(address: str, *, now=None) -> list[str]:
    """What the member does and the queue does after: ask, handle the request, deliver the outbox.
    Returns the paths of the links sent (from the emails and the texts)."""
    now = now or timezone.now()
    before = len(mail.outbox)
    from integrations.messaging import sms

    texts = len(sms.outbox)
    assert links.ask_for_link(raw_address=address, ip="203.0.113.9", now=now) == links.OK
    request = LinkRequest.objects.latest("id")
    links.send_links(request_id=request.pk, now=now)
    dispatch_due(now=now + timedelta(seconds=1))
    bodies = [message.body for message in mail.outbox[before:]] + [sent.body for sent in sms.outbox[texts:]]
    return [f"/me/open/{m.group(1)}/{m.group(2)}/" for body in bodies for m in LINK.finditer(body)]


def sign_in(client, member, *, now=None) -> None:
    paths = send_link(member.email, now=now)
    assert paths, "no link was sent"
    response = client.post(paths[-1])
    assert response.status_code == 302 and response["Location"] == reverse("portal:me:page")

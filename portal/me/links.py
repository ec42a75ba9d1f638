"""The magic link: "send me a link" (`ask_for_link`, in the request: the same work whether or not
the address matches, then a queued task `send_links`), the token in the message (derived from the
link row with the site's key; the row keeps only its hash) and opening it once (`open_link`)."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from memberships.display import home_region
from memberships.models import EventKind, Member
from memberships.services.common import Actor, record_event, write_audit

from ..models import LinkRequest, MemberLink

logger = logging.getLogger(__name__)

SALT = "portal.me.link"
EMAIL, SMS = "email", "sms"
OK, RATE_LIMITED, INVALID = "ok", "rate_limited", "invalid"
USED, EXPIRED = "used", "expired"


def link_minutes() -> int:
    return getattr(settings, "PORTAL_LINK_MINUTES", 15)


def normalise_address(raw: str) -> str:
    """An email (lower-cased) or a mobile number in E.164; "" when it is neither."""
    raw = (raw or "").strip()
    if "@" in raw:
        return raw.lower() if len(raw) <= 254 and "." in raw.rsplit("@", 1)[-1] else ""
    try:
        number = phonenumbers.parse(raw, home_region())
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def address_digest(address: str) -> str:
    return salted_hmac(SALT + ".address", address).hexdigest()


def _too_many(*, digest: str, ip: str | None, now: datetime) -> bool:
    since = now - timedelta(hours=1)
    recent = LinkRequest.objects.filter(created_at__gte=since)
    if recent.filter(address_digest=digest).count() >= getattr(settings, "PORTAL_LINK_PER_ADDRESS_PER_HOUR", 3):
        return True
    return bool(ip) and recent.filter(ip_address=ip).count() >= getattr(settings, "PORTAL_LINK_PER_IP_PER_HOUR", 10)


def ask_for_link(*, raw_address: str, ip: str | None, now: datetime) -> str:
    """What the page does with the form: store the request and queue its handling. Nothing here
    reads the members, so the answer and its time are the same whether or not the address matches."""
    address = normalise_address(raw_address)
    if not address:
        return INVALID
    digest = address_digest(address)
    if _too_many(digest=digest, ip=ip, now=now):
        return RATE_LIMITED
    request = LinkRequest.objects.create(address=address, address_digest=digest, ip_address=ip, created_at=now)
    transaction.on_commit(lambda: _enqueue(request.pk))
    return OK


def _enqueue(request_id: int) -> None:
    from django_q.tasks import async_task

    try:
        async_task("portal.me.tasks.send_member_links", request_id, group="portal")
    except Exception:  # the broker being down: the member asks again; nothing else depends on it
        logger.exception("could not queue link request %s", request_id)


def _matches(address: str) -> list[tuple[Member, str]]:
    if "@" in address:
        members = Member.objects.filter(email__iexact=address).exclude(email="")
        return [(member, EMAIL) for member in members]
    members = Member.objects.filter(Q(phone=address), sms_consent=True, sms_opted_out_at__isnull=True)
    return [(member, SMS) for member in members if member.can_receive_sms]


def link_token(link: MemberLink) -> str:
    return salted_hmac(SALT, f"{link.pk}:{link.created_at.timestamp():.6f}").hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(link: MemberLink) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("portal:me:open", args=[link.pk, link_token(link)])


@transaction.atomic
def send_links(*, request_id: int, now: datetime) -> list[MemberLink]:
    """The queued half: one link per member the address names (an email: any member with it; a
    mobile: only members who consented to SMS), each announced as a timeline event whose outbox
    delivery sends it. The stored address is cleared. Running twice sends nothing twice."""
    request = LinkRequest.objects.select_for_update().filter(pk=request_id, handled_at__isnull=True).first()
    if request is None:
        return []
    links = []
    for member, channel in _matches(request.address):
        link = MemberLink.objects.create(request=request, member=member, channel=channel, created_at=now,
                                         expires_at=now + timedelta(minutes=link_minutes()))
        link.token_hash = token_hash(link_token(link))
        link.save(update_fields=["token_hash"])
        record_event(member=member, kind=EventKind.MEMBER_LINK, summary=f"Member page link sent by {channel}",
                     payload={"link_id": link.pk, "channel": channel}, actor=Actor.system("member page"), now=now)
        links.append(link)
    request.address, request.handled_at = "", now
    request.save(update_fields=["address", "handled_at"])
    return links


def find_link(link_id: int, token: str) -> MemberLink | None:
    """The link a URL names, when its token is right (compared by hash, in constant time)."""
    link = MemberLink.objects.select_related("member__practice").filter(pk=link_id).first()
    if link is None or not link.token_hash or not constant_time_compare(link.token_hash, token_hash(token or "")):
        return None
    return link


def refusal(link: MemberLink, *, now: datetime) -> str | None:
    if link.used_at is not None:
        return USED
    if now >= link.expires_at:
        return EXPIRED
    return None


def open_link(link: MemberLink, *, ip: str | None, now: datetime) -> str | None:
    """Spend the link (once: a conditional UPDATE, so two clicks at once open one session) and audit
    the sign-in. None when it opened; else why not."""
    why = refusal(link, now=now)
    if why is not None:
        return why
    spent = MemberLink.objects.filter(pk=link.pk, used_at__isnull=True, expires_at__gt=now).update(used_at=now)
    if not spent:
        return USED
    write_audit(actor=Actor.member(link.member, ip_address=ip), action="member_signin", obj=link,
                member=link.member, now=now, detail={"channel": link.channel})
    return None


def retention_days() -> int:
    """MEMBER_LINK_RETENTION_DAYS, at least one: the rate limits count the last hour's requests."""
    return max(1, int(getattr(settings, "MEMBER_LINK_RETENTION_DAYS", 30)))


def purge_old_links(*, now: datetime, batch_size: int = 1000) -> tuple[int, int]:
    """Delete the links and the "send me a link" requests older than MEMBER_LINK_RETENTION_DAYS: a
    request keeps the client's address (and the address typed, until its task handled it), a link
    whose member it opened. The rate limits read only the last hour; the audit rows of a sign-in or a
    link shown name the link by id and hold no address: they stay, as do the timeline's link events.
    Batched, each batch its own transaction; safe to run twice. Returns (links, requests) deleted."""
    from memberships.batches import delete_in_batches

    cutoff = now - timedelta(days=retention_days())
    gone_links = delete_in_batches(MemberLink.objects.filter(created_at__lt=cutoff), batch_size=batch_size)
    gone_requests = delete_in_batches(LinkRequest.objects.filter(created_at__lt=cutoff)
                                      .exclude(links__created_at__gte=cutoff), batch_size=batch_size)
    return gone_links, gone_requests

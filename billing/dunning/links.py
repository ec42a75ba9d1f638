"""The card-update link in every message: our own signed short link, which (when opened) asks the
processor for a fresh hosted page limited to updating the card and redirects there. A processor's
session expires within minutes; our link is good while all of these hold (`card_link_refusal`):

- its dunning case is open (a paid or cancelled case needs no card);
- it is at most `DUNNING_CARD_LINK_MAX_AGE_DAYS` old, never more than `MAX_AGE_DAYS` (7) whatever
  the setting says (every message signs a new link, so a case that goes on gets fresh ones);
- no card was saved for the case since it was signed (the processor reported a new card: the
  link has done its job; if that card fails too, the next message carries a new link).

The page the processor sends the member back to (`…/done/`) has a token of its own (another salt),
so the link from a message never opens it and its token never opens the card page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.core import signing
from django.urls import reverse

from billing.models import DunningCase, DunningCaseStatus
from memberships.models import Event, EventKind

SALT = "billing.dunning.card-link"
RETURN_SALT = "billing.dunning.card-link.return"
MAX_AGE_DAYS = 7

EXPIRED, USED, CLOSED = "expired", "used", "closed"


@dataclass(frozen=True)
class SignedLink:
    case_id: int
    issued_at: datetime


def max_age() -> timedelta:
    return timedelta(days=max(0, min(settings.DUNNING_CARD_LINK_MAX_AGE_DAYS, MAX_AGE_DAYS)))


def _sign(case_id: int, salt: str) -> str:
    return signing.TimestampSigner(salt=salt).sign(str(case_id))


def _read(token: str, salt: str) -> SignedLink | None:
    """The case and the moment the link was signed, or None for a forged or altered token. Its age
    is judged by `card_link_refusal` (an expired link gets a page of its own)."""
    try:
        value = signing.TimestampSigner(salt=salt).unsign(token)
        issued = signing.b62_decode(token.rsplit(signing.Signer().sep, 2)[-2])
        return SignedLink(case_id=int(value), issued_at=datetime.fromtimestamp(issued, tz=dt_timezone.utc))
    except (signing.BadSignature, ValueError, IndexError):
        return None


def card_link_token(case_id: int) -> str:
    return _sign(case_id, SALT)


def card_return_token(case_id: int) -> str:
    return _sign(case_id, RETURN_SALT)


def read_card_link(token: str) -> SignedLink | None:
    return _read(token, SALT)


def case_id_from_return_token(token: str, *, now: datetime) -> int | None:
    """The case id of a return-page token, or None (forged, too old, or a message link's token)."""
    link = _read(token, RETURN_SALT)
    if link is None or now - link.issued_at > max_age():
        return None
    return link.case_id


def card_saved_since(case: DunningCase, moment: datetime) -> bool:
    """Whether the processor reported a new card for this case's member since `moment` (each report
    is on the case's timeline, whether or not it led to a retry)."""
    return Event.objects.filter(member_id=case.member_id, kind=EventKind.DUNNING, payload__case_id=case.pk,
                                payload__has_key="source", created_at__gte=moment).exists()


def card_link_refusal(case: DunningCase, link: SignedLink, *, now: datetime) -> str | None:
    """Why the link may not open the card page now (`closed`, `expired`, `used`), or None."""
    if case.status != DunningCaseStatus.OPEN:
        return CLOSED
    if now - link.issued_at > max_age() or link.issued_at - now > timedelta(minutes=5):
        return EXPIRED
    if card_saved_since(case, link.issued_at):
        return USED
    return None


def card_update_link(case_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("card_update", args=[card_link_token(case_id)])


def card_update_return_link(case_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("card_update_done", args=[card_return_token(case_id)])

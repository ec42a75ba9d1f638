"""The card-update link in every message: our own signed short link, which (when opened) asks the
processor for a fresh hosted card-update page and redirects there. Processor-hosted sessions expire
within minutes, our link lasts DUNNING_CARD_LINK_MAX_AGE_DAYS.

The page the processor sends the member back to (`…/done/`) has a token of its own (another salt),
so the link from a message never opens it and its token never opens the card page."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "billing.dunning.card-link"
RETURN_SALT = "billing.dunning.card-link.return"


def _sign(case_id: int, salt: str) -> str:
    return signing.TimestampSigner(salt=salt).sign(str(case_id))


def _unsign(token: str, salt: str) -> int | None:
    max_age = settings.DUNNING_CARD_LINK_MAX_AGE_DAYS * 86400
    try:
        return int(signing.TimestampSigner(salt=salt).unsign(token, max_age=max_age))
    except (signing.BadSignature, ValueError):
        return None


def card_link_token(case_id: int) -> str:
    return _sign(case_id, SALT)


def card_return_token(case_id: int) -> str:
    return _sign(case_id, RETURN_SALT)


def case_id_from_token(token: str) -> int | None:
    """The case id, or None for a forged, altered or expired token."""
    return _unsign(token, SALT)


def case_id_from_return_token(token: str) -> int | None:
    """The case id of a return-page token, or None (forged, expired, or a message link's token)."""
    return _unsign(token, RETURN_SALT)


def card_update_link(case_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("card_update", args=[card_link_token(case_id)])


def card_update_return_link(case_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("card_update_done", args=[card_return_token(case_id)])

"""The card-update link in every message: our own signed short link, which (when opened) asks the
processor for a fresh hosted card-update page and redirects there. Processor-hosted sessions expire
within minutes, our link lasts DUNNING_CARD_LINK_MAX_AGE_DAYS."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "billing.dunning.card-link"


def card_link_token(case_id: int) -> str:
    return signing.TimestampSigner(salt=SALT).sign(str(case_id))


def case_id_from_token(token: str) -> int | None:
    """The case id, or None for a forged, altered or expired token."""
    max_age = settings.DUNNING_CARD_LINK_MAX_AGE_DAYS * 86400
    try:
        return int(signing.TimestampSigner(salt=SALT).unsign(token, max_age=max_age))
    except (signing.BadSignature, ValueError):
        return None


def card_update_link(case_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("card_update", args=[card_link_token(case_id)])


def card_update_return_link(case_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("card_update_done", args=[card_link_token(case_id)])

"""Email to members through Django's email backend (EMAIL_URL)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage


class EmailUnavailable(Exception):
    pass


def send_email(*, to: str, subject: str, body: str, message_ref: str) -> str:
    """Send a plain-text email; returns our reference (the Message-ID header carries it)."""
    email = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to],
                         headers={"X-Medspa-Message": message_ref})
    try:
        email.send(fail_silently=False)
    except OSError as exc:  # SMTP down, refused, timeout
        raise EmailUnavailable(f"email backend failed: {type(exc).__name__}") from exc
    return message_ref

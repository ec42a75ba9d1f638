"""Email to members through Django's email backend (EMAIL_URL).

SMTP takes no idempotency key either, but its conversation tells "not sent" from "may have gone":
the connection is opened first, and a failure there (refused, unreachable, timed out, the greeting
or the login refused) sent nothing — `EmailUnavailable`, retried. Once the message is being handed
over, a server that answers with a refusal (a 4xx or 5xx reply to the sender, the recipients or the
message) kept nothing — `EmailUnavailable` too (`EmailRejected` when it refused the address for good:
a 5xx answer to the recipient, not tried again); but the line dropping or timing out before the
server's last answer (the one that says it took the message) may have left it with the server —
`EmailMayHaveGone`, never retried by itself. Once the server took it, a failure to close the
connection changes nothing. EMAIL_TIMEOUT bounds each wait."""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

logger = logging.getLogger(__name__)


class EmailUnavailable(Exception):
    """The mail server could not be reached, or refused the message: it has nothing; try again later."""


class EmailRejected(EmailUnavailable):
    """The mail server refused the recipient for good (a 5xx answer: no such mailbox): it kept nothing,
    and asking again gets the same answer — the address needs putting right."""


class EmailMayHaveGone(Exception):
    """The connection failed while the message was being handed over: the server may have it."""


REFUSED = (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused)


def send_email(*, to: str, subject: str, body: str, message_ref: str) -> str:
    """Send a plain-text email; returns our reference (the X-Medspa-Message header carries it)."""
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except OSError as exc:  # refused, unreachable, timed out, greeting or login refused: nothing went
        raise EmailUnavailable(f"email backend failed: {type(exc).__name__}") from exc
    email = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to],
                         headers={"X-Medspa-Message": message_ref}, connection=connection)
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused: nothing kept
        codes = sorted({code for code, _ in exc.recipients.values()})
        if codes and all(code >= 500 for code in codes):
            raise EmailRejected(f"the mail server refused the address ({', '.join(map(str, codes))})") from exc
        raise EmailUnavailable(f"email refused by the server: {type(exc).__name__}") from exc
    except REFUSED as exc:  # the server answered no: it kept nothing
        raise EmailUnavailable(f"email refused by the server: {type(exc).__name__}") from exc
    except OSError as exc:  # dropped or timed out while handing it over
        raise EmailMayHaveGone(f"the mail server's answer was lost: {type(exc).__name__}") from exc
    finally:
        _close(connection)
    return message_ref


def _close(connection) -> None:
    try:
        connection.close()
    except OSError as exc:  # the message's fate was settled before; a failed QUIT changes nothing
        logger.info("email connection close failed: %s", type(exc).__name__)

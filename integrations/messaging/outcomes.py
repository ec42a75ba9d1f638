"""What a message provider's answer means for the outbox, in one place for every member message (the
card-update messages, the notices, the member-page link):

    with outcomes.provider_answer(delivery, refused=record_the_refusal):
        result = sms.send_sms(...)              # or email.send_email(...)

- it took the message: `handed_over(delivery)` — from here a failure on our side means "may have
  been sent", never "try again";
- it could not have had the request, or said it did not act on it (Twilio: no connection, 429, 503;
  SMTP: no connection, a temporary refusal) → `RetryableDeliveryError`, tried again later;
- its answer was lost after the request went (a read timeout, the line dropped, Twilio's other 5xx,
  SMTP's line dropping during the message) → `MayHaveBeenSent`, never tried again by itself;
- it refused the message for good (Twilio's 4xx; a mail server's 5xx to the recipient: "the mail
  server refused the address") → `refused(Refusal)`, the destination's own record of why, then
  `PermanentDeliveryError`: failed at once.

A number that opted out (Twilio 21610, a STOP we had not heard of) is not a failure and is left to
the destination: `sms.SmsRecipientOptedOut` comes out of the block as it is, for it to record the
opt-out (`record_opt_out`, or its own record that does) and answer (`opted_out_answer`). So do the destination's own errors and anything unexpected,
which the outbox counts as a failed attempt (or "may have been sent" once handed over)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from memberships import services as ledger
from memberships.services import Actor

from ..outbox import MayHaveBeenSent, PermanentDeliveryError, RetryableDeliveryError, handed_over
from . import email, sms

REFUSED_ADDRESS = "the mail server refused the address"


@dataclass(frozen=True)
class Refusal:
    """Why the provider refused a message for good: `code`, Twilio's error code ("" when it gave
    none, and for email); `note`, a reason in words where the code says nothing (email)."""

    code: str = ""
    note: str = ""

    @property
    def reason(self) -> str:
        """The refusal in a few words: "the mail server refused the address", "refused (21211)"."""
        return self.note or (f"refused ({self.code})" if self.code else "refused")


def _nothing(refusal: Refusal) -> None:
    return None


@contextmanager
def provider_answer(delivery, *, refused: Callable[[Refusal], None] = _nothing) -> Iterator[None]:
    """Turn the provider's answer to the send inside the block into the outbox's outcome (above)."""
    try:
        yield
    except sms.SmsRecipientOptedOut:
        raise                                   # the destination records the opt-out and answers
    except sms.SmsUnavailable as exc:
        raise RetryableDeliveryError(str(exc)) from exc
    except sms.SmsMayHaveGone as exc:
        raise MayHaveBeenSent(str(exc)) from exc
    except sms.SmsError as exc:                 # refused for good (SmsRejected), or no usable backend
        refused(Refusal(code=exc.code))
        raise PermanentDeliveryError(str(exc)) from exc
    except email.EmailRejected as exc:          # before EmailUnavailable, its base: a wrong address
        refused(Refusal(note=REFUSED_ADDRESS))
        raise PermanentDeliveryError(str(exc)) from exc
    except email.EmailUnavailable as exc:
        raise RetryableDeliveryError(str(exc)) from exc
    except email.EmailMayHaveGone as exc:
        raise MayHaveBeenSent(str(exc)) from exc
    handed_over(delivery)                       # the provider has it: from here, never "try again"


def record_opt_out(*, member, exc: sms.SmsRecipientOptedOut, now: datetime) -> None:
    """The provider says the number opted out: no more SMS to the member (on their timeline, with
    the provider's code), as after a STOP reply."""
    ledger.record_sms_opt_out(member=member, actor=Actor.system("sms"), now=now,
                              source=f"provider code {exc.code}" if exc.code else "opt-out")


def opted_out_answer(exc: sms.SmsRecipientOptedOut) -> dict:
    """The delivery's result when the number opted out: not sent, not a failure (the member said
    STOP; the opt-out is recorded)."""
    return {"opted_out": True, "error_code": exc.code}

"""SMS backends, chosen by settings.SMS_BACKEND: `console` (the demo: logs that a message went, with
ids only), `locmem` (tests: kept in `sms.outbox`), `twilio` (the twilio SDK; TWILIO_API_BASE points
it at a local fake in tests). Each returns an `SmsResult` or raises one of our errors."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

TWILIO_OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"


class SmsError(Exception):
    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.code = code


class SmsRecipientOptedOut(SmsError):
    """The number replied STOP (Twilio 21610): record the opt-out, fall back to email."""


class SmsRejected(SmsError):
    """The provider refused this message for good (bad number, blocked)."""


class SmsUnavailable(SmsError):
    """The provider could not be reached or failed: try again later."""


@dataclass(frozen=True)
class SmsResult:
    provider_id: str
    status: str


@dataclass(frozen=True)
class SentSms:
    to: str
    body: str
    provider_id: str


outbox: list[SentSms] = []  # locmem backend: what tests read
opted_out_numbers: set[str] = set()  # locmem backend: numbers that answer like Twilio's 21610


class ConsoleBackend:
    def send(self, *, to: str, body: str, status_callback: str = "") -> SmsResult:
        sid = f"SMconsole{uuid.uuid4().hex[:24]}"
        logger.info("sms %s queued (console backend, %s characters)", sid, len(body))
        return SmsResult(provider_id=sid, status="sent")


class LocmemBackend:
    def send(self, *, to: str, body: str, status_callback: str = "") -> SmsResult:
        if to in opted_out_numbers:
            raise SmsRecipientOptedOut("Attempt to send to unsubscribed recipient", code=str(TWILIO_OPTED_OUT))
        sid = f"SMlocmem{uuid.uuid4().hex[:24]}"
        outbox.append(SentSms(to=to, body=body, provider_id=sid))
        return SmsResult(provider_id=sid, status="queued")


class TwilioBackend:
    def __init__(self):
        from twilio.rest import Client

        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
        if settings.TWILIO_API_BASE:
            self.client.api.base_url = settings.TWILIO_API_BASE.rstrip("/")

    def send(self, *, to: str, body: str, status_callback: str = "") -> SmsResult:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        kwargs = {"to": to, "from_": settings.TWILIO_FROM_NUMBER, "body": body}
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            kwargs.pop("from_")
            kwargs["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            code = str(exc.code or "")
            if exc.code == TWILIO_OPTED_OUT:
                raise SmsRecipientOptedOut("recipient opted out", code=code) from exc
            if exc.status == 429 or exc.status >= 500:
                raise SmsUnavailable(f"twilio answered {exc.status}", code=code) from exc
            raise SmsRejected(f"twilio refused the message ({exc.status}, {code})", code=code) from exc
        except TwilioException as exc:
            raise SmsUnavailable(f"twilio unreachable: {type(exc).__name__}") from exc
        except OSError as exc:  # connection refused, timeouts (requests' errors derive from it)
            raise SmsUnavailable(f"twilio unreachable: {type(exc).__name__}") from exc
        return SmsResult(provider_id=message.sid, status=message.status or "queued")


BACKENDS = {"console": ConsoleBackend, "locmem": LocmemBackend, "twilio": TwilioBackend}


def get_backend():
    try:
        return BACKENDS[settings.SMS_BACKEND]()
    except KeyError:
        raise SmsError(f"unknown SMS_BACKEND {settings.SMS_BACKEND!r}; use console, locmem or twilio") from None


def send_sms(*, to: str, body: str, status_callback: str = "") -> SmsResult:
    return get_backend().send(to=to, body=body, status_callback=status_callback)

"""SMS backends, chosen by settings.SMS_BACKEND: `console` (the demo: logs that a message went, with
ids only), `locmem` (tests: kept in `sms.outbox`), `twilio` (the twilio SDK; TWILIO_API_BASE points
it at a local fake in tests). Each returns an `SmsResult` or raises one of our errors.

Twilio's Messages API takes no idempotency key: a create that reached Twilio may have sent the text
whatever came back after. So a failure is safe to retry (`SmsUnavailable`) only when Twilio cannot
have had the request or says it did not act on it: no connection was made (refused, name not
resolved, connect timeout: requests' ConnectTimeout, a ConnectionError raised while connecting),
429 ("never processed; safe to retry") and 503 ("temporarily unavailable; try again"). A read timeout
once the request went, the line dropped while waiting for the answer, or another 5xx (Twilio: a 500
on sending "may result in multiple messages") is `SmsMayHaveGone`: never retried by itself. Calls
time out after TWILIO_TIMEOUT_SECONDS (the SDK's default waits for ever)."""

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
    """The provider could not be reached, or said it did not act on the request: try again later."""


class SmsMayHaveGone(SmsError):
    """The request reached the provider (or may have) and its answer was lost or was a server error:
    the text may have been sent, so it is not tried again by itself."""


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
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN,
                             http_client=TwilioHttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS))
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
            if exc.status in (429, 503):
                raise SmsUnavailable(f"twilio answered {exc.status}", code=code) from exc
            if exc.status >= 500:
                raise SmsMayHaveGone(f"twilio answered {exc.status} after the request went", code=code) from exc
            raise SmsRejected(f"twilio refused the message ({exc.status}, {code})", code=code) from exc
        except TwilioException as exc:
            raise SmsUnavailable(f"twilio unreachable: {type(exc).__name__}") from exc
        except OSError as exc:  # requests' errors derive from it
            if not_connected(exc):
                raise SmsUnavailable(f"twilio unreachable: {type(exc).__name__}") from exc
            raise SmsMayHaveGone(f"twilio's answer was lost after the request went: {type(exc).__name__}") from exc
        return SmsResult(provider_id=message.sid, status=message.status or "queued")


def not_connected(exc: BaseException) -> bool:
    """Whether a transport error came before any connection was made, so the peer never had the
    request: requests' ConnectTimeout, or a ConnectionError whose cause is a failed connection
    (refused, unreachable, name not resolved). Not a read timeout, nor the line dropped after the
    request went (a ConnectionError too, caused by a ProtocolError), nor a TLS error (which cannot
    be told from one after the request)."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ConnectTimeout
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

    if isinstance(exc, ConnectTimeout):
        return True
    if not isinstance(exc, RequestsConnectionError) or not exc.args:
        return False
    cause = exc.args[0]
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, ConnectTimeoutError)


BACKENDS = {"console": ConsoleBackend, "locmem": LocmemBackend, "twilio": TwilioBackend}


def get_backend():
    try:
        return BACKENDS[settings.SMS_BACKEND]()
    except KeyError:
        raise SmsError(f"unknown SMS_BACKEND {settings.SMS_BACKEND!r}; use console, locmem or twilio") from None


def send_sms(*, to: str, body: str, status_callback: str = "") -> SmsResult:
    return get_backend().send(to=to, body=body, status_callback=status_callback)

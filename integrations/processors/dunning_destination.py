"""Outbox destination for dunning retries: a DUNNING_RETRY event becomes one call to the processor
("pay the open invoice") with the attempt's own idempotency key, and its answer goes back to the case."""

from __future__ import annotations

import logging
from datetime import datetime

from billing import dunning
from billing import services as billing_services
from billing.dunning.retries import withdraw_retry
from billing.models import AttemptStatus, DunningAttempt, DunningCaseStatus
from memberships.errors import LedgerError
from memberships.models import AutomationStage, Event, EventKind

from ..outbox import PermanentDeliveryError, RetryableDeliveryError
from .dunning import ProcessorRejected, ProcessorUnavailable
from .dunning_choice import dunning_processor_for

logger = logging.getLogger(__name__)

FORGIVEN = (DunningCaseStatus.FORGIVEN, DunningCaseStatus.WRITTEN_OFF)    # no payment expected any more


class PaymentRetryDestination:
    name = "payment_retry"
    repeatable = True   # the retry carries the attempt's idempotency key: asked twice, it pays once

    def wants(self, event: Event) -> bool:
        return event.kind == EventKind.DUNNING_RETRY and not event.payload.get("shadowed")

    def required_stage(self, event: Event) -> str:
        return AutomationStage.DUNNING

    def describe(self, event: Event) -> str:
        return f"retry the payment of invoice {event.payload.get('invoice_ref', '?')} (retry {event.payload.get('attempt_number', '?')})"

    def on_dead(self, event: Event, *, delivery, now: datetime) -> None:
        """The processor stayed unreachable for every attempt: the case records a failed retry and
        goes on to its next step (the dead letter stays in the outbox for a manager)."""
        attempt_id = event.payload.get("attempt_id")
        if attempt_id and DunningAttempt.objects.filter(pk=attempt_id).exists():
            dunning.record_retry_result(attempt_id=attempt_id, paid=False, unreachable=True, now=now)
            logger.warning("dunning retry attempt %s dead-lettered (delivery %s)", attempt_id, delivery.pk)

    def deliver(self, event: Event, *, delivery, now: datetime) -> dict:
        attempt = (DunningAttempt.objects.select_related("case__practice").filter(pk=event.payload.get("attempt_id"))
                   .first())
        if attempt is None:
            raise PermanentDeliveryError("no such retry attempt")
        if attempt.status == AttemptStatus.FAILED and delivery.attempts == 1:
            # a manager's redelivery of a dead letter (attempts start again at 1): try that retry again
            attempt = dunning.rearm_unreachable_retry(attempt_id=attempt.pk, now=now) or attempt
        if attempt.status != AttemptStatus.REQUESTED:
            return {"attempt": attempt.status, "replay": True}
        if attempt.case.status in FORGIVEN and withdraw_retry(attempt_id=attempt.pk, now=now):
            return {"skipped": "no payment expected: the invoice was voided or written off at the processor"}
        try:
            processor = dunning_processor_for(attempt.case.practice)
            outcome = processor.retry_invoice_payment(attempt.case.invoice_ref, attempt.idempotency_key)
        except ProcessorUnavailable as exc:
            raise RetryableDeliveryError(str(exc)) from exc
        except ProcessorRejected as exc:
            dunning.record_retry_result(attempt_id=attempt.pk, paid=False, decline_code="processor_rejected", now=now)
            raise PermanentDeliveryError(str(exc)) from exc
        if outcome.paid and outcome.charge is not None:
            # Mirror the paid invoice and refill now (once per invoice); the processor's own
            # invoice.paid webhook that follows is then a no-op.
            try:
                billing_services.record_charge_succeeded(charge=outcome.charge, now=now)
            except LedgerError:
                logger.warning("paid invoice of dunning attempt %s left to the webhook", attempt.pk)
        dunning.record_retry_result(attempt_id=attempt.pk, paid=outcome.paid, decline_code=outcome.decline_code,
                                    now=now)
        logger.info("dunning retry %s of case %s: %s", attempt.number, attempt.case_id,
                    "paid" if outcome.paid else outcome.decline_code)
        return {"paid": outcome.paid, "decline_code": outcome.decline_code}

"""A scripted stand-in for the processor's dunning protocol (the Stripe adapter itself is tested
against a local HTTP fake and against localstripe). Same key, same answer: like Stripe's
idempotency, a replayed retry never charges twice."""

from __future__ import annotations

from integrations.processors.dunning import ProcessorUnavailable, RetryOutcome


class FakeProcessor:
    script: dict[str, list] = {}
    answers: dict[str, RetryOutcome] = {}
    charges: list[tuple[str, str]] = []   # (invoice, key) for every charge actually attempted
    down = False

    @classmethod
    def reset(cls):
        cls.script, cls.answers, cls.charges, cls.down = {}, {}, [], False

    @classmethod
    def will_answer(cls, invoice_id: str, *outcomes: RetryOutcome):
        cls.script.setdefault(invoice_id, []).extend(outcomes)

    def retry_invoice_payment(self, invoice_id: str, idempotency_key: str) -> RetryOutcome:
        if FakeProcessor.down:
            raise ProcessorUnavailable("processor answered 503")
        if idempotency_key in FakeProcessor.answers:
            return FakeProcessor.answers[idempotency_key]
        FakeProcessor.charges.append((invoice_id, idempotency_key))
        queue = FakeProcessor.script.get(invoice_id) or []
        outcome = queue.pop(0) if queue else RetryOutcome.failed("insufficient_funds")
        FakeProcessor.answers[idempotency_key] = outcome
        return outcome

    def card_update_url(self, *, customer_id: str, return_url: str) -> str:
        return f"https://billing.processor.test/session/{customer_id}?return_url={return_url}"

"""What at the edges needs a person: dead-lettered deliveries, webhooks that failed, record
exceptions still open. Reads only."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Delivery, DeliveryStatus, InboundEvent, InboundStatus, RecordException, RecordExceptionStatus


@dataclass(frozen=True)
class Attention:
    dead_deliveries: int
    failed_webhooks: int
    open_record_exceptions: int

    @property
    def total(self) -> int:
        return self.dead_deliveries + self.failed_webhooks + self.open_record_exceptions


def needs_attention(*, practice_id: int | None) -> Attention:
    """Counts for one practice (None: every practice, for a superuser)."""
    scope = {} if practice_id is None else {"practice_id": practice_id}
    return Attention(
        dead_deliveries=Delivery.objects.filter(status=DeliveryStatus.DEAD, **scope).count(),
        failed_webhooks=InboundEvent.objects.filter(status=InboundStatus.FAILED, **scope).count(),
        open_record_exceptions=RecordException.objects.filter(status=RecordExceptionStatus.OPEN, **scope).count(),
    )

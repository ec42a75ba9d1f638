"""A member's request from their own page (pause or cancel), waiting in the staff queue "Member
requests" until front desk or a manager approves it (through the same doors as the staff pages) or
declines it with a reason; under the practice's `member_requests_self_serve` it is applied at once."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .members import Member
from .membership import Membership
from .practice import Practice


class MemberRequestKind(models.TextChoices):
    PAUSE = "pause", "Pause"
    CANCEL = "cancel", "Cancellation"


class MemberRequestStatus(models.TextChoices):
    PENDING = "pending", "Waiting for staff"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"
    APPLIED = "applied", "Done at once (self-serve)"


class MemberRequestReason(models.TextChoices):
    """The list a member picks from (the dashboard counts cancellations by it). No clinical words."""

    PRICE = "price", "The price"
    NOT_USING = "not_using", "I don't use it enough"
    TRAVEL = "travel", "Travel or a busy time"
    MOVING = "moving", "Moving away"
    SERVICE = "service", "Not happy with the service"
    OTHER = "other", "Something else"


class MemberRequest(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="requests")
    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="requests")
    kind = models.CharField(max_length=10, choices=MemberRequestKind.choices)
    status = models.CharField(max_length=10, choices=MemberRequestStatus.choices, default=MemberRequestStatus.PENDING)
    reason = models.CharField(max_length=12, choices=MemberRequestReason.choices)
    note = models.CharField(max_length=500, blank=True, help_text="The member's own words.")
    pause_until = models.DateField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decline_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["membership", "kind"], condition=Q(status="pending"),
                                    name="member_request_one_pending"),
            models.CheckConstraint(condition=~Q(kind="pause") | Q(pause_until__isnull=False),
                                   name="member_request_pause_has_date"),
            models.CheckConstraint(condition=~Q(status="declined") | ~Q(decline_reason=""),
                                   name="member_request_decline_has_reason"),
        ]
        indexes = [models.Index(fields=["practice", "status", "created_at"], name="member_request_queue_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request {self.pk} ({self.status})"

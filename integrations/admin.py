"""The edges in the admin: the webhook inbox (status, error, re-process) and the outbox deliveries
(dead letters, redeliver). Read-only apart from the actions, which call the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from memberships.admin import ReadOnlyAdmin
from memberships.admin_audit import AuditedMemberPages
from memberships.views.common import audit, audit_view

from . import inbox, outbox
from .models import Delivery, DeliveryStatus, InboundEvent, InboundStatus
from .selectors import inbox_backlog, members_named_by


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "source", "event_type", "event_id", "status", "attempts", "next_attempt_at",
                    "short_error"]
    list_filter = ["status", "source", "event_type"]
    search_fields = ["event_id", "event_type"]
    date_hierarchy = "received_at"
    readonly_fields = ["source", "event_id", "event_type", "status", "error", "attempts", "practice",
                       "object_created", "received_at", "processed_at", "next_attempt_at", "payload"]
    actions = ["reprocess_events"]

    @admin.display(description="error")
    def short_error(self, obj: InboundEvent) -> str:
        return (obj.error or "")[:80]

    def changelist_view(self, request, extra_context=None):
        """Above the list: how many events wait (including those waiting with backoff) and how
        many failed, each with the oldest one's age."""
        practice_id = None if request.user.is_superuser else getattr(
            getattr(request.user, "staff_profile", None), "practice_id", None)
        backlog = inbox_backlog(practice_id=practice_id, now=timezone.now())
        return super().changelist_view(request, extra_context={
            **(extra_context or {}), "inbox": backlog, "inbox_unlisted": 0 if practice_id is None else backlog.unassigned})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """An event's page shows its payload (a member's name, email, card brand as the processor or
        the record sent them): each opening is audited, as every view of member data is."""
        response = super().change_view(request, object_id, form_url, extra_context)
        original = (getattr(response, "context_data", None) or {}).get("original")
        if original is not None and getattr(response, "status_code", None) == 200:
            # one row per member the payload names (one without a member when it names none we know)
            audit_view(request, action="admin_view_inboundevent", obj=original,
                       members=members_named_by(original) or [None],
                       detail={"source": original.source, "event_type": original.event_type})
        return response

    @admin.action(description="Re-process the selected events")
    def reprocess_events(self, request, queryset):
        now = timezone.now()
        results: dict[str, int] = {}
        for row in queryset.order_by("received_at", "id"):
            status = inbox.reprocess(row, now=now) or "busy"
            results[status] = results.get(status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(results.items()))
        level = messages.WARNING if results.get(InboundStatus.FAILED) else messages.SUCCESS
        self.message_user(request, f"Re-processed: {summary}.", level)


@admin.register(Delivery)
class DeliveryAdmin(AuditedMemberPages, ReadOnlyAdmin):
    """Each row is a member's event (its summary) and what its destination answered (a record's
    refusal may quote the member's chart): the list and the page are audited for those members."""

    list_display = ["created_at", "destination", "event", "practice", "status", "attempts", "next_attempt_at",
                    "note", "short_error"]
    list_filter = ["status", "destination", "practice"]
    search_fields = ["event__id"]
    readonly_fields = ["event", "practice", "destination", "status", "attempts", "next_attempt_at", "last_error",
                       "note", "result", "created_at", "sending_since", "finished_at", "checked_at", "checked_by"]
    actions = ["redeliver_selected", "mark_checked"]

    @admin.display(description="error")
    def short_error(self, obj: Delivery) -> str:
        return (obj.last_error or "")[:80]

    def member_of(self, obj: Delivery) -> int | None:
        return obj.event.member_id

    def changelist_view(self, request, extra_context=None):
        """Above the list: how many member messages may have been sent (their sending stopped before
        the provider's answer was recorded), and what to do about them."""
        uncertain = self.get_queryset(request).filter(status=DeliveryStatus.UNCERTAIN, checked_at__isnull=True).count()
        return super().changelist_view(request, extra_context={**(extra_context or {}), "uncertain": uncertain})

    @admin.action(description="Redeliver the selected dead-lettered, failed or may-have-been-sent deliveries")
    def redeliver_selected(self, request, queryset):
        now = timezone.now()
        count = 0
        for delivery in queryset.filter(status__in=outbox.REDELIVERABLE).order_by("id"):
            try:
                count += outbox.redeliver(delivery, now=now)
            except outbox.RedeliveryRefused as exc:     # nothing changed; the manager is told why
                self.message_user(request, f"Delivery {delivery.pk} not queued: {exc}", messages.WARNING)
        if count:
            outbox.enqueue_dispatch()
        self.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)

    @admin.action(description="Mark the selected as checked: nothing more to do (they leave Needs attention)")
    def mark_checked(self, request, queryset):
        """For a dead, failed or may-have-been-sent delivery a manager has looked into and that can't or
        needn't go again (the member asked for another link, the follow-up ended, the member was
        reached by phone). Audited; a later redelivery clears the mark."""
        now = timezone.now()
        chosen = list(queryset.filter(status__in=outbox.REDELIVERABLE, checked_at__isnull=True).order_by("id"))
        for delivery in chosen:
            if Delivery.objects.filter(pk=delivery.pk, checked_at__isnull=True).update(
                    checked_at=now, checked_by=request.user):
                audit(request, action="delivery_checked", obj=delivery,
                      detail={"destination": delivery.destination, "status": delivery.status})
        self.message_user(request, f"{len(chosen)} deliveries marked as checked.", messages.SUCCESS)

from django.contrib import admin

from memberships.admin import ReadOnlyAdmin
from memberships.admin_audit import AuditedMemberPages

from .models import Invoice, ProcessorSubscription


@admin.register(Invoice)
class InvoiceAdmin(AuditedMemberPages, ReadOnlyAdmin):
    list_display = ["processor_invoice_id", "membership", "amount_display", "currency", "status", "attempt_count",
                    "last_decline_code", "hard_decline", "paid_at", "created_at"]
    list_filter = ["status", "hard_decline", "practice"]
    search_fields = ["processor_invoice_id", "processor_subscription_id"]

    def member_of(self, obj) -> int | None:
        return obj.membership.member_id if obj.membership_id else None


@admin.register(ProcessorSubscription)
class ProcessorSubscriptionAdmin(AuditedMemberPages, ReadOnlyAdmin):
    practice_path = "membership__member__practice"
    list_display = ["processor_subscription_id", "membership", "status", "price_ref", "amount_cents",
                    "collection_paused", "cancel_at_period_end", "updated_at"]
    list_filter = ["status"]
    search_fields = ["processor_subscription_id", "processor_customer_id"]

    def member_of(self, obj) -> int | None:
        return obj.membership.member_id if obj.membership_id else None

from .dunning import admin as dunning_admin  # noqa: E402,F401  (registers DunningPolicy, DunningCase)
from .notices import admin as notices_admin  # noqa: E402,F401  (registers NoticeSettings, MemberNotice)

from django.contrib import admin

from memberships.admin import ReadOnlyAdmin

from .models import Invoice, ProcessorSubscription


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["processor_invoice_id", "membership", "amount_display", "currency", "status", "attempt_count",
                    "last_decline_code", "hard_decline", "paid_at", "created_at"]
    list_filter = ["status", "hard_decline", "practice"]
    search_fields = ["processor_invoice_id", "processor_subscription_id"]


@admin.register(ProcessorSubscription)
class ProcessorSubscriptionAdmin(ReadOnlyAdmin):
    practice_path = "membership__member__practice"
    list_display = ["processor_subscription_id", "membership", "status", "price_ref", "amount_cents",
                    "collection_paused", "cancel_at_period_end", "updated_at"]
    list_filter = ["status"]
    search_fields = ["processor_subscription_id", "processor_customer_id"]

from .dunning import admin as dunning_admin  # noqa: E402,F401  (registers DunningPolicy, DunningCase)

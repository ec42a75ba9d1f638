from django.contrib import admin

from .models import Invoice, ProcessorSubscription


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["processor_invoice_id", "membership", "amount_display", "currency", "status", "attempt_count",
                    "last_decline_code", "hard_decline", "paid_at", "created_at"]
    list_filter = ["status", "hard_decline", "practice"]
    search_fields = ["processor_invoice_id", "processor_subscription_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProcessorSubscription)
class ProcessorSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["processor_subscription_id", "membership", "status", "price_ref", "amount_cents",
                    "collection_paused", "cancel_at_period_end", "updated_at"]
    list_filter = ["status"]
    search_fields = ["processor_subscription_id", "processor_customer_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

from .dunning import admin as dunning_admin  # noqa: E402,F401  (registers DunningPolicy, DunningCase)

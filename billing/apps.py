from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .dunning import wiring as dunning_wiring

        dunning_wiring.connect(self)

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Member side"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .me import wiring as me_wiring

        me_wiring.connect()

from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "medspa.health"
    label = "health"
    verbose_name = "Health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every periodic job of the project (the heartbeat among them), created after migrate.
        from medspa import schedules

        schedules.connect(self)

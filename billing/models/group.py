"""The group dashboard's figures as last computed (`billing.group.snapshot`): one row per group.

Computing a group's figures reads every member of every location (about a second of database work
for 100,000 members), so the page does not compute them on each view: the worker refreshes them
every GROUP_FIGURES_REFRESH_SECONDS and the page shows them with the time they were taken."""

from django.db import models


class GroupFigures(models.Model):
    organization = models.OneToOneField("memberships.Organization", on_delete=models.CASCADE,
                                        related_name="figures")
    computed_at = models.DateTimeField(help_text="The moment the figures describe.")
    took_ms = models.PositiveIntegerField(default=0, help_text="How long the computation took.")
    data = models.JSONField(help_text="The dashboard's rows, total and charts (billing.group.snapshot).")
    refreshing_since = models.DateTimeField(null=True, blank=True,
                                            help_text="Set while a worker recomputes them, so two don't.")

    class Meta:
        verbose_name_plural = "group figures"

    def __str__(self) -> str:
        return f"figures of group {self.organization_id} as of {self.computed_at:%Y-%m-%d %H:%M}"

from django.db import models


class WorkerHeartbeat(models.Model):
    """When a django-q2 worker last ran the heartbeat task: one row per cluster name, overwritten.

    A row written by a scheduled task, rather than django-q2's own cluster `Stat`: the task proves the
    whole path work takes (the scheduler fires, the broker hands the task out, a worker runs it and
    can write to the database), for the ORM broker and Redis alike. `Stat` only says a cluster
    process is alive, and with the ORM broker it lives in Django's cache, which by default is
    per-process memory the web server cannot see."""

    cluster = models.CharField(max_length=100, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.cluster} at {self.beat_at:%Y-%m-%d %H:%M:%S}"

"""Encrypt every stored record credential again with the first of FIELD_ENCRYPTION_KEYS: after a
new key is put first (the old one kept after it until this has run), then the old key can go."""

from django.core.management.base import BaseCommand
from django.db import transaction

from memberships.models import Location, Practice


class Command(BaseCommand):
    help = "Re-encrypt the record credentials with the first FIELD_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        done = 0
        with transaction.atomic():
            for pk, config, secret in Practice.objects.values_list("pk", "record_config", "record_webhook_secret"):
                # values_list reads the plain values; saving encrypts with the first key.
                Practice.objects.filter(pk=pk).update(record_config=dict(config or {}),
                                                      record_webhook_secret=secret)
                done += 1
            places = 0
            for pk, config, secret in Location.objects.values_list("pk", "record_config", "record_webhook_secret"):
                Location.objects.filter(pk=pk).update(record_config=dict(config or {}), record_webhook_secret=secret)
                places += 1
        self.stdout.write(f"{done} practices and {places} locations re-encrypted with the first key.")


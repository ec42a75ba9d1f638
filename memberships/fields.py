"""Model fields that keep secrets encrypted at rest (the record adapters' credentials): the database
holds `fernet:<token>`, the model attribute the plain value. Keys come from the environment,
`FIELD_ENCRYPTION_KEYS` (comma-separated Fernet keys; the first encrypts, every one decrypts, so a
key is rotated by putting the new one first and running `manage.py rotate_field_encryption`); without
it (the demo) one key is derived from SECRET_KEY. A value written before encryption (no prefix) is
read as it is and encrypted at its next save; the data migration encrypts every existing row."""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"
# The keys of `record_config` that hold credentials (the rest — URLs, ids — stays readable).
SECRET_CONFIG_KEYS = frozenset({"api_key", "token", "client_secret", "password", "secret"})


@functools.lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = base64.urlsafe_b64encode(hashlib.sha256(f"field-encryption:{secret_key}".encode()).digest())
        return MultiFernet([Fernet(derived)])
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be Fernet keys (Fernet.generate_key()).") from exc


def cipher() -> MultiFernet:
    keys = tuple(k.strip() for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if k.strip())
    return _cipher(keys, settings.SECRET_KEY)


def encrypt(value: str) -> str:
    if not value or value.startswith(PREFIX):
        return value
    return PREFIX + cipher().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return value
    try:
        return cipher().decrypt(value[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured("A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS "
                                   "(a key was removed before its rows were rotated).") from exc


class EncryptedTextField(models.TextField):
    """A secret string: encrypted in the database, plain on the model."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value is not None else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if isinstance(value, str) else value


class SecretJSONField(models.JSONField):
    """A settings object whose credential keys (`SECRET_CONFIG_KEYS`) are encrypted in the database."""

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        if isinstance(value, dict):
            return {k: decrypt(v) if k in SECRET_CONFIG_KEYS else v for k, v in value.items()}
        return value

    def get_prep_value(self, value):
        if isinstance(value, dict):
            value = {k: encrypt(v) if k in SECRET_CONFIG_KEYS and isinstance(v, str) else v for k, v in value.items()}
        return super().get_prep_value(value)

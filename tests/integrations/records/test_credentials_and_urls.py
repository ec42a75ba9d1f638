"""The record connection's credentials are encrypted at rest and write-only in the admin; outbound
record URLs must be https and public (SSRF), checked when saved and again when called."""

import socket

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from integrations.records import http
from integrations.records.base import RecordRejected
from memberships.fields import _cipher
from memberships.models import Practice
from tests.factories import PracticeFactory

SECRET = "whsec-record-7f3a9c"
API_KEY = "zenoti-api-key-1234567890"


def _raw(practice):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT record_config, record_webhook_secret FROM {Practice._meta.db_table} WHERE id = %s",
                       [practice.pk])
        config, secret = cursor.fetchone()
    return str(config), secret


@pytest.fixture
def keys(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [first]
    _cipher.cache_clear()
    yield settings, first, second
    _cipher.cache_clear()


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """This machine resolves no public names: api.zenoti.com answers with a public address."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "api.zenoti.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.0.0.10", 443))]
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def zenoti(db):
    return PracticeFactory(slug="zen", record_adapter="zenoti", record_webhook_secret=SECRET,
                           record_config={"base_url": "https://api.zenoti.com", "api_key": API_KEY, "center_id": "c1"})


def test_credentials_are_ciphertext_in_the_database_and_plain_on_the_model(keys, zenoti):
    config, secret = _raw(zenoti)
    assert SECRET not in secret and secret.startswith("fernet:")
    assert API_KEY not in config and "https://api.zenoti.com" in config and "c1" in config
    fresh = Practice.objects.get(pk=zenoti.pk)
    assert fresh.record_webhook_secret == SECRET and fresh.record_config["api_key"] == API_KEY


def test_a_new_key_put_first_reads_the_old_rows_and_rotation_moves_them(keys, zenoti):
    settings, first, second = keys
    settings.FIELD_ENCRYPTION_KEYS = [second, first]
    _cipher.cache_clear()
    assert Practice.objects.get(pk=zenoti.pk).record_webhook_secret == SECRET  # old key still reads
    call_command("rotate_field_encryption")
    settings.FIELD_ENCRYPTION_KEYS = [second]  # the old key can go now
    _cipher.cache_clear()
    fresh = Practice.objects.get(pk=zenoti.pk)
    assert fresh.record_webhook_secret == SECRET and fresh.record_config["api_key"] == API_KEY


def test_rows_written_in_clear_before_are_read_and_encrypted(keys, zenoti):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Practice._meta.db_table} SET record_webhook_secret = %s WHERE id = %s",
                       ["legacy-plain-secret", zenoti.pk])
    assert Practice.objects.get(pk=zenoti.pk).record_webhook_secret == "legacy-plain-secret"
    call_command("rotate_field_encryption")
    assert "legacy-plain-secret" not in _raw(zenoti)[1]
    assert Practice.objects.get(pk=zenoti.pk).record_webhook_secret == "legacy-plain-secret"


def _change(admin_client, practice, **changes):
    page = admin_client.get(reverse("admin:memberships_practice_change", args=[practice.pk]))
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["record_config"] = form["record_config"].value()
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not False}
    return page, admin_client.post(reverse("admin:memberships_practice_change", args=[practice.pk]), data)


def test_the_admin_never_shows_a_credential_and_keeps_it_unless_replaced(admin_client, zenoti, settings):
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    page, response = _change(admin_client, zenoti)
    html = page.content.decode()
    assert SECRET not in html and API_KEY not in html and "Currently set" in html
    assert response.status_code == 302, response.content.decode()[:2000]
    zenoti.refresh_from_db()
    assert zenoti.record_webhook_secret == SECRET and zenoti.record_config["api_key"] == API_KEY
    _change(admin_client, zenoti, new_webhook_secret="a-brand-new-secret")
    zenoti.refresh_from_db()
    assert zenoti.record_webhook_secret == "a-brand-new-secret" and zenoti.record_config["api_key"] == API_KEY


@pytest.mark.parametrize("url", ["http://api.zenoti.com", "https://127.0.0.1/fhir", "https://10.0.0.8/",
                                 "https://169.254.169.254/latest/meta-data/", "https://[::1]/",
                                 "https://[::ffff:127.0.0.1]/", "https://localhost:8443/", "file:///etc/passwd"])
def test_the_admin_refuses_an_inward_url_and_changes_nothing(admin_client, zenoti, settings, url):
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    config = '{"base_url": "%s", "api_key": "%s", "center_id": "c1"}' % (url, http_mask())
    _, response = _change(admin_client, zenoti, record_config=config)
    assert response.status_code == 200 and "base_url" in response.content.decode()
    zenoti.refresh_from_db()
    assert zenoti.record_config["base_url"] == "https://api.zenoti.com"


def http_mask():
    from integrations.records.admin import MASK

    return MASK


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "224.0.0.1"])
def test_names_that_resolve_inward_are_refused(settings, monkeypatch, address):
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, 443))])
    with pytest.raises(http.UnsafeUrl):
        http.check_url("https://records.example.com/")


def test_a_public_https_host_is_allowed(settings, monkeypatch):
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                                 ("93.184.215.14", 443))])
    http.check_url("https://records.example.com/fhir")


def test_the_check_runs_again_at_request_time(settings, httpserver):
    """A URL saved while allowed (or a name that resolves inward later) is refused when called: no
    request leaves."""
    httpserver.expect_request("/latest/meta-data/").respond_with_data("secret-role")
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    with pytest.raises(RecordRejected):
        http.send(http.session(), "GET", httpserver.url_for("/latest/meta-data/"))
    assert httpserver.log == []
    settings.RECORD_ALLOW_PRIVATE_URLS = True  # a lab: allowed
    assert http.send(http.session(), "GET", httpserver.url_for("/latest/meta-data/")).text == "secret-role"


def test_redirects_are_not_followed(settings, httpserver):
    settings.RECORD_ALLOW_PRIVATE_URLS = True
    httpserver.expect_request("/bounce").respond_with_data("", status=302, headers={"Location": "http://10.0.0.1/"})
    with pytest.raises(RecordRejected):
        http.send(http.session(), "GET", httpserver.url_for("/bounce"))


def test_a_name_that_turns_inward_after_the_check_is_refused_at_connect_time(settings, monkeypatch):
    """DNS rebinding: the name answers a public address to the check, then 127.0.0.1 to the
    connection. The connection uses the address it checked itself, so nothing reaches the inside."""
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14"])

    def rebinding(host, *args, **kwargs):
        if host != "records.example.com":
            return real(host, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.1"), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        with pytest.raises(RecordRejected):
            http.send(http.session(), "GET", f"https://records.example.com:{port}/latest/meta-data/", timeout=1)
        with pytest.raises(socket.timeout):
            listener.accept()[0].close()  # no connection arrived
    finally:
        listener.close()


def test_a_6to4_address_wrapping_a_loopback_one_is_refused(settings, monkeypatch):
    settings.RECORD_ALLOW_PRIVATE_URLS = False
    with pytest.raises(http.UnsafeUrl):
        http.check_url("https://[2002:7f00:1::]/")

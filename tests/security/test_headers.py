"""Content-Security-Policy on every response (django-csp), no inline script in our pages,
X-Frame-Options DENY everywhere but the compact chart panel, which only CHART_FRAME_ANCESTORS may
frame; HSTS with subdomains and preload when the settings say so."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import ana_garcia

ROOT = Path(__file__).resolve().parents[2]
EHR = "https://ehr.example.com"


def csp(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()}


def strict(response) -> None:
    policy = csp(response)
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and "unsafe-inline" not in policy.get("script-src", "")
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["default-src"] == "'self'"


@pytest.fixture
def member(glow):
    return ana_garcia(glow[0])[0]


def test_the_login_page_error_pages_and_card_pages_carry_the_policy():
    anonymous = Client()
    for path in [reverse("memberships:login"), "/no-such-page/", "/billing/card/not-a-token/",
                 "/billing/card/not-a-token/done/"]:
        response = anonymous.get(path)
        strict(response)
        assert response["X-Frame-Options"] == "DENY", path


def test_staff_pages_admin_and_api_docs_carry_the_policy(client, manager, member):
    client.force_login(manager)
    for path in ["/", reverse("memberships:chart", args=[member.pk]), "/manage/", "/admin/",
                 "/admin/memberships/member/", "/api/docs/", "/api/schema/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        strict(response)
        assert response["X-Frame-Options"] == "DENY", path


def test_the_500_page_carries_the_policy(client, front_desk, monkeypatch):
    import importlib

    chart_views = importlib.import_module("memberships.views.chart")

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(chart_views.selectors, "search_members", broken)
    client.force_login(front_desk)
    client.raise_request_exception = False
    response = client.get("/?q=garcia")
    assert response.status_code == 500 and b"Something went wrong" in response.content
    strict(response)


def test_the_api_docs_run_without_inline_script(client, manager):
    client.force_login(manager)
    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in page
    start = re.findall(r'<script src="([^"]*script=[^"]*)"', page)
    assert start and client.get(start[0].replace("&amp;", "&"))["Content-Type"].startswith("application/javascript")


def test_no_template_of_ours_has_inline_script_or_event_handlers():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", text, re.S):
            if body.strip() or "src=" not in attrs:
                offenders.append(f"{path.relative_to(ROOT)}: inline <script>")
        if re.search(r"<style\b", text):
            offenders.append(f"{path.relative_to(ROOT)}: <style> element")
        if re.search(r"\son[a-z]+\s*=", text) or "javascript:" in text:
            offenders.append(f"{path.relative_to(ROOT)}: inline event handler")
    assert offenders == []


def test_the_compact_chart_is_framable_only_by_the_listed_ehr(client, front_desk, member, settings):
    settings.CHART_FRAME_ANCESTORS = [EHR]
    client.force_login(front_desk)
    compact = client.get(reverse("memberships:chart", args=[member.pk]) + "?compact=1")
    assert compact.status_code == 200
    assert "X-Frame-Options" not in compact
    assert csp(compact)["frame-ancestors"] == EHR
    assert csp(compact)["script-src"] == "'self'"
    full = client.get(reverse("memberships:chart", args=[member.pk]))
    assert full["X-Frame-Options"] == "DENY" and csp(full)["frame-ancestors"] == "'none'"
    search = client.get("/")
    assert search["X-Frame-Options"] == "DENY" and csp(search)["frame-ancestors"] == "'none'"


def test_without_listed_origins_the_compact_chart_is_not_framable(client, front_desk, member, settings):
    settings.CHART_FRAME_ANCESTORS = []
    client.force_login(front_desk)
    compact = client.get(reverse("memberships:chart", args=[member.pk]) + "?compact=1")
    assert compact["X-Frame-Options"] == "DENY" and csp(compact)["frame-ancestors"] == "'none'"


def test_hsts_includes_subdomains_and_preload_when_set(settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = Client().get(reverse("memberships:login"), secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_static_files_carry_a_policy_and_are_not_framable(settings):
    """WhiteNoise answers static files before django-csp and the framing middleware run; among them
    are HTML pages with inline script (Swagger UI's oauth2-redirect.html) served from our origin."""
    settings.WHITENOISE_USE_FINDERS = True
    response = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/oauth2-redirect.html")
    assert response.status_code == 200
    policy = csp(response)
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"

"""The group dashboard's figures are computed by the worker and read by the page
(`billing.group.snapshot`): what the manager sees is exactly what was computed, says when, is never
older than GROUP_FIGURES_MAX_AGE_SECONDS, and "Refresh now" brings it up to date; two refreshes at
once keep the later moment."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.group import snapshot
from billing.group.figures import group_dashboard
from billing.models import GroupFigures
from memberships.models import Organization
from tests.factories import glow_tier

from .group_world import build_group, group_manager
from .test_group_dashboard import _group_of, _member, populated  # noqa: F401 (fixture)

MINUTE = timedelta(minutes=1)


def _page(client, owner):
    client.force_login(owner)
    return client.get(reverse("group:dashboard"))


def test_what_is_stored_reads_back_as_the_same_dashboard(populated):
    world, _, now = populated
    board = group_dashboard(organization_id=world.organization.pk, now=now)
    again = snapshot.load(snapshot.dump(board), organization_id=world.organization.pk)
    assert again == board                      # rows, total, every chart's series, the weeks, the zone
    assert again.charts.payback[0].zone_name == board.charts.payback[0].zone_name
    assert [w.starts_on for w in again.charts.payback] == [w.starts_on for w in board.charts.payback]


def test_the_page_shows_the_stored_figures_and_when_they_were_taken(client, populated, settings):
    world, m, now = populated
    owner = group_manager(world.organization, world.glow)
    taken = timezone.now() - 2 * MINUTE
    snapshot.refresh(organization_id=world.organization.pk, now=taken)
    glow_t = m["Ames"].tier
    _member(world.glow, glow_t, world.downtown, "Newcomer", timezone.now())     # joins after the figures

    body = _page(client, owner).content.decode()
    assert 'data-testid="group-members">7<' in body                            # as computed two minutes ago
    local = timezone.localtime(taken, world.bloom.zone)                       # the group's zone (Bloom's, first)
    assert f"Figures as of {local:%b} {local.day}, " in body and "every 5 minutes" in body

    response = client.post(reverse("group:refresh"))
    assert response.status_code == 302 and response["Location"] == reverse("group:dashboard")
    assert 'data-testid="group-members">8<' in client.get(reverse("group:dashboard")).content.decode()


def test_refresh_now_twice_in_a_minute_computes_once(client, populated, time_machine):
    world, _, _ = populated
    owner = group_manager(world.organization, world.glow)
    client.force_login(owner)
    time_machine.move_to(timezone.now(), tick=False)   # the second press within the minute, however slow the first
    client.post(reverse("group:refresh"))
    first = GroupFigures.objects.get(organization=world.organization)
    client.post(reverse("group:refresh"))
    assert GroupFigures.objects.get(organization=world.organization).computed_at == first.computed_at
    assert client.get(reverse("group:refresh")).status_code == 405                 # a link can't trigger it


def test_figures_older_than_the_limit_are_computed_again_for_the_page(client, populated, settings):
    world, m, _ = populated
    owner = group_manager(world.organization, world.glow)
    old = timezone.now() - timedelta(seconds=settings.GROUP_FIGURES_MAX_AGE_SECONDS + 60)
    snapshot.refresh(organization_id=world.organization.pk, now=old)
    _member(world.glow, m["Ames"].tier, world.downtown, "Newcomer", timezone.now())
    assert 'data-testid="group-members">8<' in _page(client, owner).content.decode()
    assert GroupFigures.objects.get(organization=world.organization).computed_at > old


def test_old_figures_another_request_is_computing_are_shown_with_their_time_not_computed_again(
        client, populated, settings, monkeypatch):
    world, m, _ = populated
    owner = group_manager(world.organization, world.glow)
    old = timezone.now() - timedelta(seconds=settings.GROUP_FIGURES_MAX_AGE_SECONDS + 60)
    snapshot.refresh(organization_id=world.organization.pk, now=old)
    GroupFigures.objects.filter(organization=world.organization).update(refreshing_since=timezone.now())
    _member(world.glow, m["Ames"].tier, world.downtown, "Newcomer", timezone.now())
    computed = []
    monkeypatch.setattr(snapshot, "group_dashboard", lambda **kw: computed.append(kw))
    body = _page(client, owner).content.decode()
    assert computed == [] and 'data-testid="group-members">7<' in body and "Figures as of" in body
    # once that request is done (or its mark lapsed), the next view computes them
    GroupFigures.objects.filter(organization=world.organization).update(refreshing_since=None)
    monkeypatch.undo()
    assert 'data-testid="group-members">8<' in _page(client, owner).content.decode()


def test_figures_stored_in_another_shape_are_recomputed_not_shown(client, populated):
    world, _, _ = populated
    owner = group_manager(world.organization, world.glow)
    GroupFigures.objects.create(organization=world.organization, computed_at=timezone.now(),
                                data={"version": snapshot.VERSION, "rows": "something else"})
    body = _page(client, owner).content.decode()
    assert 'data-testid="group-members">7<' in body
    assert snapshot.load(GroupFigures.objects.get(organization=world.organization).data,
                         organization_id=world.organization.pk) is not None


def test_the_csv_holds_the_figures_the_page_shows_and_says_when(client, populated):
    world, m, _ = populated
    owner = group_manager(world.organization, world.glow)
    taken = timezone.now() - 2 * MINUTE
    snapshot.refresh(organization_id=world.organization.pk, now=taken)
    _member(world.glow, m["Ames"].tier, world.downtown, "Newcomer", timezone.now())
    client.force_login(owner)
    response = client.get(reverse("group:export"))
    total = response.content.decode().strip().splitlines()[-1].split(",")
    assert total[0] == "Total" and total[2] == "7"
    assert f"-{timezone.localtime(taken, world.bloom.zone):%Y%m%d-%H%M}.csv" in response["Content-Disposition"]


def test_the_worker_refreshes_every_group_and_one_failure_stops_no_other(db, monkeypatch):
    now = timezone.now()
    small, other = _group_of(2, now), _group_of(3, now)
    Organization.objects.create(name="Empty", slug="empty")                     # no practice: nothing to show
    real = snapshot.group_dashboard

    def failing_for_small(*, organization_id, now):
        if organization_id == small.pk:
            raise RuntimeError("boom")
        return real(organization_id=organization_id, now=now)

    monkeypatch.setattr(snapshot, "group_dashboard", failing_for_small)
    assert snapshot.refresh_all() == {"refreshed": 1, "skipped": 0, "failed": 1}
    assert list(GroupFigures.objects.values_list("organization_id", flat=True)) == [other.pk]
    monkeypatch.setattr(snapshot, "group_dashboard", real)
    assert snapshot.refresh_all() == {"refreshed": 2, "skipped": 0, "failed": 0}
    row = GroupFigures.objects.get(organization=other)
    assert snapshot.load(row.data, organization_id=other.pk).total.members == 3 and row.refreshing_since is None


def test_a_group_another_worker_is_refreshing_is_skipped_until_its_mark_lapses(db, settings):
    now = timezone.now()
    org = _group_of(2, now)
    snapshot.refresh(organization_id=org.pk, now=now - 10 * MINUTE)
    GroupFigures.objects.filter(organization=org).update(refreshing_since=now - MINUTE)
    assert snapshot.refresh_all(when=now)["skipped"] == 1
    later = now + timedelta(seconds=settings.GROUP_FIGURES_REFRESH_SECONDS)
    assert snapshot.refresh_all(when=later)["refreshed"] == 1          # the worker that marked it died
    assert GroupFigures.objects.get(organization=org).computed_at == later


def test_the_schedule_refreshes_the_figures():
    from medspa.schedules import every_schedule

    jobs = {fields["func"]: fields for _, fields in every_schedule()}
    assert jobs["billing.group.snapshot.refresh_all"]["minutes"] == 5
    assert callable(snapshot.refresh_all)


def test_reading_stored_figures_takes_the_same_queries_whatever_the_group(client, db):
    now = timezone.now()
    counts = []
    for n in (2, 6):
        org = _group_of(n, now)
        owner = group_manager(org, org.practices.order_by("id").first(), username=f"owner{n}")
        snapshot.refresh(organization_id=org.pk, now=now)
        client.force_login(owner)
        client.get(reverse("group:dashboard"))
        with CaptureQueriesContext(connection) as ctx:
            client.get(reverse("group:dashboard"))
        assert not any("memberships_ledgerentry" in q["sql"] for q in ctx.captured_queries)   # no figure computed
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_keep_the_later_moment():
    world = build_group()
    glow_t, _, _ = glow_tier(world.glow)
    now = timezone.now()
    _member(world.glow, glow_t, world.downtown, "Ames", now)
    moments = [now - MINUTE * i for i in range(6)]
    barrier, errors = threading.Barrier(len(moments)), []

    def refresh(at):
        try:
            barrier.wait()
            snapshot.refresh(organization_id=world.organization.pk, now=at)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh, args=(at,)) for at in moments]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    row = GroupFigures.objects.get(organization=world.organization)
    assert row.computed_at == now and snapshot.load(row.data, organization_id=world.organization.pk).total.members == 1


@dataclass
class _Inner:
    when: datetime
    flag: bool


@dataclass
class _Figure:
    on: date
    share: float
    by_name: dict[str, int] = field(default_factory=dict)
    pairs: list[tuple[str, int]] = field(default_factory=list)
    inner: _Inner | None = None


def test_the_stored_form_holds_every_kind_of_value_a_figure_may_have():
    value = _Figure(on=date(2026, 11, 1), share=0.25, by_name={"Glow": 3}, pairs=[("a", 1)],
                    inner=_Inner(when=datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/Los_Angeles")),
                                 flag=True))
    assert snapshot._decode(_Figure, snapshot._encode(value)) == value

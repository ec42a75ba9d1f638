"""A practice's members: registering one at the front desk, the practice's member-number sequence,
and finding a member the ledger already has from what a spreadsheet row says about them."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable

from django.db import transaction
from django.db.models import BigIntegerField, Max
from django.db.models.functions import Cast, Substr

from memberships.errors import DuplicateMember, LedgerError
from memberships.models import EventKind, Member, Practice

from .bulk_rows import among
from .common import Actor, record_event
from .idempotency import idempotent

NUMBER_PREFIX = "M"
NUMBER_DIGITS = 6


def lock_member_numbers(practice: Practice) -> None:
    """Take the practice's member-number lock until the transaction ends: whoever allocates numbers
    or decides "this person is new" holds it, so two registrations or two imports of one sheet at
    once never give one person two members. (FOR NO KEY UPDATE: rows that merely reference the
    practice — events, members of other writers — are not held up.)"""
    if not transaction.get_connection().in_atomic_block:
        raise LedgerError("Member numbers are allocated inside a transaction.")
    list(Practice.objects.select_for_update(no_key=True).filter(pk=practice.pk).values_list("pk", flat=True))


def allocate_member_numbers(*, practice: Practice, count: int) -> list[str]:
    """The practice's next `count` member numbers (M000001, M000002, …: one past the highest number
    of that form the practice has, whatever created it). Call with `lock_member_numbers` held."""
    if count <= 0:
        return []
    highest = (Member.objects.filter(practice=practice, member_number__regex=rf"^{NUMBER_PREFIX}[0-9]{{1,15}}$")
               .aggregate(n=Max(Cast(Substr("member_number", len(NUMBER_PREFIX) + 1), BigIntegerField())))["n"])
    first = (highest or 0) + 1
    return [f"{NUMBER_PREFIX}{n:0{NUMBER_DIGITS}d}" for n in range(first, first + count)]


@dataclass(frozen=True)
class Person:
    """What a spreadsheet row says about who a member is."""

    member_number: str = ""
    email: str = ""            # lower case
    phone: str = ""            # E.164
    first_name: str = ""
    last_name: str = ""
    date_of_birth: date | None = None
    household: str = ""        # rows of one household may share an email or a phone


def _name(first: str, last: str) -> tuple[str, str]:
    return " ".join(first.lower().split()), " ".join(last.lower().split())


class MemberIndex:
    """A practice's members by number, email, mobile and name + date of birth, loaded in one query,
    to match many rows without a query per row. `match` follows the order a practice expects: the
    member number when the row has one, else the email, then the mobile, then name + date of birth.
    An email or mobile that several members share (a household) matches the one of the same name."""

    FIELDS = ("pk", "member_number", "email", "phone", "first_name", "last_name", "date_of_birth")

    def __init__(self, rows: Iterable[tuple]):
        self.by_number: dict[str, int] = {}
        self.by_email: dict[str, list[tuple[int, tuple[str, str]]]] = {}
        self.by_phone: dict[str, list[tuple[int, tuple[str, str]]]] = {}
        self.by_name_dob: dict[tuple[str, str, date], list[int]] = {}
        self.numbers: dict[int, str] = {}
        for pk, number, email, phone, first, last, dob in rows:
            self.add(pk, number=number, email=email, phone=phone, first=first, last=last, dob=dob)

    @classmethod
    def of_practice(cls, practice: Practice) -> "MemberIndex":
        return cls(Member.objects.filter(practice=practice).values_list(*cls.FIELDS))

    @classmethod
    def of_people(cls, practice: Practice, people: list[Person], member_ids: Iterable[int] = ()) -> "MemberIndex":
        """Only the members these people could be (for a chunk of rows, under the lock): by number,
        email, mobile, name + date of birth, and the members `member_ids` names (matched before)."""
        condition = (among("member_number", {p.member_number for p in people if p.member_number})
                     | among("email", {p.email for p in people if p.email})
                     | among("phone", {p.phone for p in people if p.phone})
                     | among("pk", set(member_ids))
                     | (among("date_of_birth", {p.date_of_birth for p in people if p.date_of_birth})
                        & among("search_name", {f"{p.first_name} {p.last_name}".lower().strip() for p in people
                                                if p.date_of_birth})))
        return cls(Member.objects.filter(condition, practice=practice).values_list(*cls.FIELDS))

    def add(self, pk: int, *, number: str, email: str, phone: str, first: str, last: str,
            dob: date | None) -> None:
        name = _name(first, last)
        self.numbers[pk] = number
        self.by_number[number] = pk
        if email:
            self.by_email.setdefault(email.lower(), []).append((pk, name))
        if phone:
            self.by_phone.setdefault(phone, []).append((pk, name))
        if dob and any(name):
            self.by_name_dob.setdefault((*name, dob), []).append(pk)

    def owners(self, *, email: str = "", phone: str = "") -> set[int]:
        """The members the ledger has with this email (or this mobile)."""
        table, key = (self.by_email, email.lower()) if email else (self.by_phone, phone)
        return {pk for pk, _ in table.get(key) or []} if key else set()

    def namesakes(self, person: Person) -> list[int]:
        """The members of the person's name who have their email, mobile or date of birth."""
        name = _name(person.first_name, person.last_name)
        if not any(name):
            return []
        found = set(self.by_name_dob.get((*name, person.date_of_birth), [])) if person.date_of_birth else set()
        for key, table in ((person.email.lower(), self.by_email), (person.phone, self.by_phone)):
            found |= {pk for pk, other in table.get(key) or [] if other == name} if key else set()
        return sorted(found)

    def match(self, person: Person) -> int | None:
        """The member this person is, or None for someone new."""
        if person.member_number:
            return self.by_number.get(person.member_number)
        name = _name(person.first_name, person.last_name)
        for key, table in ((person.email, self.by_email), (person.phone, self.by_phone)):
            found = _one(table.get(key) or [], name, household=bool(person.household)) if key else None
            if found is not None:
                return found
        if person.date_of_birth and any(name):
            candidates = self.by_name_dob.get((*name, person.date_of_birth), [])
            return candidates[0] if len(candidates) == 1 else None
        return None


def same_first_name(one: str, other: str) -> bool:
    """Whether two first names name one person as far as an import can tell: the same first word,
    whatever the case and accents ("Zoë" and "zoe", "Mary Ann" and "Mary")."""
    def folded(name: str) -> str:
        plain = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
        return (plain.casefold().split() or [""])[0]
    return folded(one) == folded(other)


def _one(candidates: list[tuple[int, tuple[str, str]]], name: tuple[str, str], *, household: bool) -> int | None:
    """The member among those sharing an email or a phone: the only one (unless the row is of a
    household, whose members share them: then only the one of the same name), else the one of the
    same name."""
    if len(candidates) == 1 and not household:
        return candidates[0][0]
    same_name = [pk for pk, other in candidates if other == name]
    return same_name[0] if len(same_name) == 1 else None


def _check_names(*, first_name: str, last_name: str, **_) -> None:
    if not first_name.strip() or not last_name.strip():
        raise LedgerError("First and last name are required.")


@idempotent("create_member", check=_check_names)
def create_member(*, practice: Practice, first_name: str, last_name: str, email: str = "", phone: str = "",
                  sms_consent: bool = False, household: bool = False, actor: Actor, idempotency_key: str,
                  now: datetime) -> Member:
    """Register a member of `practice` with the practice's next member number. `phone` is E.164 (the
    form normalizes it). Replaying the key returns the first member. `household`: the email or phone
    may be another member's (someone of their household, whom the caller has told apart)."""
    first_name, last_name, email = first_name.strip(), last_name.strip(), email.strip().lower()
    lock_member_numbers(practice)
    if email and not household and Member.objects.filter(practice=practice, email__iexact=email).exists():
        raise DuplicateMember("A member with this email already exists; search for them instead.")
    if phone and not household and Member.objects.filter(practice=practice, phone=phone).exists():
        raise DuplicateMember("A member with this phone number already exists; search for them instead.")
    [number] = allocate_member_numbers(practice=practice, count=1)
    member = Member.objects.create(
        practice=practice, member_number=number, first_name=first_name, last_name=last_name, email=email,
        phone=phone, sms_consent=sms_consent, sms_consent_at=now if sms_consent else None,
    )
    record_event(member=member, kind=EventKind.NOTE, summary=f"Member {member.member_number} registered",
                 payload={"member_id": member.pk}, actor=actor, now=now)
    return member

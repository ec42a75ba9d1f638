"""Who is twice: the rows of one file that name one person twice (the same email or mobile outside
a household, the same name and date of birth), and the processor ids a row gives that another member
already has. Each is an error on the row, naming the other line or member."""

from __future__ import annotations

import unicodedata

from memberships.models import Member, Membership
from memberships.services.bulk_rows import among

from .columns import FIELD_LABELS, Mapping
from .rows import ImportRow, RowError


class ProcessorIds:
    """A processor subscription or customer id names one member: a row whose id another member
    (in the ledger, of any practice, or on an earlier line) already has is refused, so a webhook
    never reaches the wrong member."""

    FIELDS = (("processor_subscription_id", "subscription"), ("processor_customer_id", "customer"))

    def __init__(self, rows: list[ImportRow], *, mapping: Mapping, headers: list[str]):
        subs = {r.processor_subscription_id for r in rows if r.processor_subscription_id}
        customers = {r.processor_customer_id for r in rows if r.processor_customer_id}
        self.owners: dict[str, dict[str, set[int]]] = {"processor_subscription_id": {}, "processor_customer_id": {}}
        for ref, member_id in Membership.objects.filter(among("processor_subscription_id", subs)).values_list(
                "processor_subscription_id", "member_id"):
            self.owners["processor_subscription_id"].setdefault(ref, set()).add(member_id)
        for ref, member_id in Member.objects.filter(among("processor_customer_id", customers)).values_list(
                "processor_customer_id", "pk"):
            self.owners["processor_customer_id"].setdefault(ref, set()).add(member_id)
        self.columns = {name: headers[mapping.index_of(name)] if mapping.index_of(name) is not None else ""
                        for name, _ in self.FIELDS}
        self.first_line: dict[tuple[str, str], tuple[int, str]] = {}

    def check(self, row: ImportRow, *, member_id: int | None) -> list[RowError]:
        errors = []
        who = row.member_number.lower() or f"line {row.line}"
        for name, label in self.FIELDS:
            ref = getattr(row, name)
            if not ref:
                continue
            others = self.owners[name].get(ref, set()) - ({member_id} if member_id is not None else set())
            earlier = self.first_line.setdefault((name, ref), (row.line, who))
            if others:
                errors.append(RowError(row.line, self.columns[name],
                                       f"processor {label} id {ref} already belongs to another member"))
            elif earlier[1] != who:
                errors.append(RowError(row.line, self.columns[name],
                                       f"processor {label} id {ref} is already on line {earlier[0]}"))
        return errors


def _folded(name: str) -> str:
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def name_key(row: ImportRow | dict) -> tuple | None:
    """The name as one person has it, whatever the accents, case or a second first name ("Renée
    Dubois" and "renee dubois", "Mary Ann" and "Mary"); None without a name. A row, or a member's
    values."""
    first, last = (row["first_name"], row["last_name"]) if isinstance(row, dict) else (row.first_name, row.last_name)
    if not (first or last):
        return None
    return _folded(first).partition(" ")[0], _folded(last)


def _could_be_one(row: ImportRow, other: ImportRow) -> bool:
    """Whether two rows of one name key could be one person: not when each has its own member number
    (the ledger has two members), not when their dates of birth differ (a mother and her daughter of
    one name sharing the family email), and not when both give a full first name and these differ
    (the twins "Mary Ann" and "Mary Beth"; "Mary Ann" and "Mary" could be one)."""
    if row.member_number and other.member_number and row.member_number.lower() != other.member_number.lower():
        return False
    if row.date_of_birth and other.date_of_birth and row.date_of_birth != other.date_of_birth:
        return False
    words, other_words = _folded(row.first_name).split(), _folded(other.first_name).split()
    shorter = min(len(words), len(other_words))
    return words[:shorter] == other_words[:shorter]


def _same_person_key(row: ImportRow) -> tuple | None:
    """Name and date of birth as one person has them; None without a birth date."""
    name = name_key(row)
    return (*name, row.date_of_birth) if name and row.date_of_birth else None


def _column(name: str, *, mapping: Mapping, headers: list[str]) -> str:
    index = mapping.index_of(name)
    return headers[index] if index is not None else FIELD_LABELS[name]


def shared_contacts(rows: list[ImportRow], *, mapping: Mapping, headers: list[str]) -> dict[int, list[RowError]]:
    """Two rows of one file with the same email or mobile: an error on each, naming the other's line,
    unless both say they are of the same household. Two rows with the same name and the same email,
    mobile or date of birth are one person twice, household or not: an error on each (imported, they
    would be two members, and every import of the file again would add two more, since neither could
    be told from the other) — unless something tells them apart (`_could_be_one`).
    (A row repeating an earlier row's member number is that number's duplicate, said once on the
    later row.)"""
    first_of_number: dict[str, int] = {}
    groups: dict[tuple[str, str], list[ImportRow]] = {}
    people: dict[tuple, list[ImportRow]] = {}
    for row in rows:
        number = row.member_number.lower()
        if number and first_of_number.setdefault(number, row.line) != row.line:
            continue
        for name in ("email", "phone"):
            if getattr(row, name):
                groups.setdefault((name, getattr(row, name)), []).append(row)
        key = _same_person_key(row)
        if key:
            people.setdefault(key, []).append(row)
    errors: dict[int, list[RowError]] = {}
    born_column = _column("date_of_birth", mapping=mapping, headers=headers)
    for group in people.values():
        for row in group:
            others = ", ".join(str(r.line) for r in group if r is not row and _could_be_one(row, r))
            if not others:
                continue
            errors.setdefault(row.line, []).append(RowError(
                row.line, born_column,
                f"{row.first_name} {row.last_name} born {row.date_of_birth:%Y-%m-%d} is also on "
                f"line{'s' if ', ' in others else ''} {others}: the same person twice? Keep one row "
                f"(one person is one member)"))
    for (name, value), group in groups.items():
        if len(group) < 2:
            continue
        column = _column(name, mapping=mapping, headers=headers)
        what = "email" if name == "email" else "mobile"
        by_name: dict[tuple, list[ImportRow]] = {}
        for row in group:
            by_name.setdefault(name_key(row) or ("line", row.line), []).append(row)
        twice = set()
        for same in by_name.values():
            for row in same:
                others = ", ".join(str(r.line) for r in same if r is not row and _could_be_one(row, r))
                if not others:
                    continue
                twice.add(row.line)
                errors.setdefault(row.line, []).append(RowError(
                    row.line, column, f"{row.first_name} {row.last_name} with the {what} {value} is also on "
                                      f"line{'s' if ', ' in others else ''} {others}: the same person twice? Keep "
                                      f"one row (one person is one member)"))
        if group[0].household and all(r.household == group[0].household for r in group):
            continue
        for row in (row for row in group if row.line not in twice):
            others = ", ".join(str(r.line) for r in group if r is not row)
            errors.setdefault(row.line, []).append(RowError(
                row.line, column, f"the {what} {value} is also on line{'s' if ', ' in others else ''} {others}: "
                                  f"two members cannot share one (a Household column allows it for one household)"))
    return errors

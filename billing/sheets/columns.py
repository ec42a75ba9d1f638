"""Which field each column of a membership spreadsheet holds: known header spellings, balance
columns named after a service, and the manager's own mapping first. Pure functions, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .reading import normalize_header

# The fields a row can carry, and header spellings seen in practices' spreadsheets (normalized:
# lower case, punctuation to spaces, single spaces).
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "member_number": ("member number", "member no", "member id", "membership number",
                      "membership id", "membership no", "member num", "id", "number", "client id", "client number"),
    "first_name": ("first name", "first", "given name", "firstname", "fname", "forename", "client first name",
                   "patient first name", "member first name"),
    "last_name": ("last name", "last", "surname", "family name", "lastname", "lname", "client last name",
                  "patient last name", "member last name"),
    "full_name": ("name", "member", "full name", "member name", "client name", "patient name", "guest name",
                  "client", "guest", "customer", "customer name", "client full name"),
    "email": ("email", "e mail", "email address", "e mail address", "mail", "client email", "member email",
              "email id"),
    "phone": ("phone", "mobile", "cell", "phone number", "mobile phone", "mobile number", "cell phone",
              "telephone", "tel", "sms number", "cell number", "phone no", "mobile no", "cell no",
              "cell phone number", "mobile phone number", "telephone number", "contact number", "primary phone",
              "client phone", "member phone"),
    "tier": ("tier", "membership", "plan", "membership tier", "level", "tier name", "membership type",
             "membership plan", "program"),
    "status": ("status", "membership status", "state"),
    "start_date": ("start date", "start", "member since", "joined", "join date", "date joined", "enrolled",
                   "enrollment date", "signup date", "sign up date", "started", "joined on", "since",
                   "membership start", "membership start date", "date started", "enrolled on", "date enrolled",
                   "enroll date", "signed up"),
    "paused_until": ("paused until", "pause until", "pause end", "pause end date", "pause ends", "pause ends on",
                     "paused through", "on hold until", "hold until", "frozen until", "resume date", "resumes",
                     "resumes on", "resume on"),
    "cancelled_on": ("cancel date", "cancelled on", "canceled on", "cancellation date", "cancelled date",
                     "canceled date", "date cancelled", "date canceled", "cancel on", "ended on", "date ended",
                     "membership end date", "membership ended"),
    "period_end": ("current period end", "next billing date", "next bill date", "renewal date", "renews",
                   "paid through", "next charge", "next payment date", "period end"),
    "price": ("price", "monthly price", "rate", "monthly rate", "dues", "monthly dues", "amount", "fee",
              "monthly fee", "price per month", "monthly", "monthly amount", "monthly cost", "cost",
              "monthly charge", "membership price", "membership fee", "per month"),
    "processor_customer_id": ("stripe customer", "stripe customer id", "customer id", "processor customer id",
                              "stripe id", "stripe cus"),
    "processor_subscription_id": ("stripe subscription", "stripe subscription id", "subscription id",
                                  "subscription", "processor subscription id", "stripe sub", "sub id"),
    "record_patient_id": ("patient id", "record patient id", "chart id", "chart number", "ehr id", "emr id",
                          "guest id", "patient number", "record id"),
    "date_of_birth": ("date of birth", "dob", "birth date", "birthdate", "birthday", "born", "d o b"),
    "household": ("household", "household id", "household name", "family", "family id",
                  "household number", "shared account"),
    "sms_consent": ("sms consent", "sms opt in", "sms optin", "text consent", "texting ok", "sms ok",
                    "consent to text", "sms", "text opt in", "ok to text"),
}
FIELD_LABELS = {
    "member_number": "Member number", "first_name": "First name", "last_name": "Last name",
    "full_name": "Name", "email": "Email", "phone": "Phone", "tier": "Tier", "status": "Status",
    "start_date": "Start date", "paused_until": "Paused until", "cancelled_on": "Cancelled on",
    "period_end": "Current period end", "price": "Price",
    "processor_customer_id": "Processor customer id", "processor_subscription_id": "Processor subscription id",
    "record_patient_id": "Record patient id", "sms_consent": "SMS consent", "date_of_birth": "Date of birth",
    "household": "Household",
}
BALANCE_PREFIX = "balance:"
DATE_FIELDS = ("start_date", "paused_until", "cancelled_on", "period_end", "date_of_birth")
# Words that may surround a service's name in a balance column's header. Any other word ("used",
# "per month", "price", "last", "redeemed"…) makes the column something else: it is not guessed.
_BALANCE_WORDS = {"balance", "balances", "remaining", "remain", "left", "bal", "units", "usd", "dollars", "current",
                  "opening", "available", "owed", "banked", "unused"}
# "HydraFacial credits left": a service's balance, unless "credit" is part of the service's name.
_CREDIT_WORDS = {"credit", "credits"}
# A header with one of these words that names no service exactly ("Facials remaining", "Botox units
# left") looks like a balance: the manager is asked which service's it is, it is not left out silently.
_LOOKS_LIKE_BALANCE = {"balance", "balances", "remaining", "remain", "left", "bal", "available", "unused", "banked",
                       "owed", "outstanding"}
# Words practices use for a service, beside its own name.
_NICKNAMES = {"botox": "toxin", "dysport": "toxin", "xeomin": "toxin", "jeuveau": "toxin", "daxxify": "toxin",
              "tox": "toxin", "neurotoxin": "toxin", "filler": "filler", "juvederm": "filler", "restylane": "filler",
              "hydra": "hydrafacial", "facial": "facial", "facials": "facial", "peel": "peel", "peels": "peel",
              "laser": "laser", "dollars": "credit", "product": "credit", "retail": "credit", "store": "credit"}


@dataclass
class ServiceRef:
    code: str
    name: str
    is_credit: bool


@dataclass
class Mapping:
    columns: dict[int, str] = field(default_factory=dict)   # column index → field
    ignored: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)     # header → why it was read so, or not read
    problems: list[str] = field(default_factory=list)       # file-level: the mapping needs the manager
    suggestions: list[dict] = field(default_factory=list)   # [{header, target, service}]: confirm or ignore
    _by_field: dict[str, int] | None = field(default=None, repr=False)

    def index_of(self, name: str) -> int | None:
        """The column holding the field (read once the mapping is settled: cached)."""
        if self._by_field is None or len(self._by_field) != len(self.columns):
            self._by_field = {f: i for i, f in sorted(self.columns.items(), reverse=True)}
        return self._by_field.get(name)


def _service_names(service: ServiceRef) -> list[str]:
    """The service's name and code as a header writes them, and without balance words ("Neurotoxin
    (units)" is also "neurotoxin", as "Neurotoxin (units) balance" reads once its balance words go)."""
    names = [normalize_header(service.name), normalize_header(service.code)]
    names += [" ".join(w for w in name.split() if w not in _BALANCE_WORDS) for name in names]
    return [n for n in dict.fromkeys(names) if n]


def _balance_service(norm: str, services: list[ServiceRef]) -> ServiceRef | None:
    """The service whose balance a header names: once the balance words are taken out, what is left
    is exactly the service's name or code ("HydraFacial balance", "Product credit remaining",
    "HydraFacials left"); "credit" may go too ("HydraFacial credits left")."""
    words = [w for w in norm.split() if w not in _BALANCE_WORDS]
    for stripped in (" ".join(words), " ".join(w for w in words if w not in _CREDIT_WORDS)):
        for service in services:
            if any(stripped in (name, f"{name}s") for name in _service_names(service)):
                return service
    return None


def _mentioned_service(norm: str, services: list[ServiceRef]) -> tuple[ServiceRef, str] | None:
    """The service a header mentions among other words, and those other words."""
    best: tuple[ServiceRef, str] | None = None
    best_len = 0
    for service in services:
        for name in _service_names(service):
            match = re.search(rf"\b{re.escape(name)}s?\b", norm)
            if match and len(name) > best_len:
                rest = (norm[:match.start()] + " " + norm[match.end():]).split()
                best, best_len = (service, " ".join(w for w in rest if w not in _BALANCE_WORDS)), len(name)
    return best


def _balance_note(service: ServiceRef) -> str:
    return f"opening balance of {service.name}, in {'dollars' if service.is_credit else 'units'}"


def guess_mapping(*, headers: list[str], services: list[ServiceRef],
                  override: dict[str, str] | None = None) -> Mapping:
    """Which field each column holds: the manager's override first, then known header spellings,
    then balance columns named after a service ("HydraFacial balance", "Product credit ($)").

    A balance column is guessed only when its header is the service's name and balance words, nothing
    else: "HydraFacial used this month" or "Product credit per month" are not balances (an imported
    balance never expires), so they are left out with a note unless the manager maps them. Two
    columns that both look like one service's balance are a problem for the manager to settle."""
    mapping = Mapping()
    taken = _map_named_columns(mapping, headers=headers, services=services, override=override)
    candidates = _balance_candidates(mapping, headers=headers, services=services, taken=taken)
    _settle_balance_columns(mapping, headers=headers, services=services, candidates=candidates)
    return mapping


def _map_named_columns(mapping: Mapping, *, headers: list[str], services: list[ServiceRef],
                       override: dict[str, str] | None) -> set[str]:
    """The columns the manager mapped (or ignored), then those with a known header spelling; the
    fields they take."""
    override = {normalize_header(k): v for k, v in (override or {}).items()}
    synonyms = {syn: name for name, syns in FIELD_SYNONYMS.items() for syn in syns}
    by_code = {service.code: service for service in services}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        norm = normalize_header(header)
        if not norm:
            continue
        if norm in override:
            target = override[norm]
            if target:
                mapping.columns[index] = target
                taken.add(target)
                service = by_code.get(target[len(BALANCE_PREFIX):]) if target.startswith(BALANCE_PREFIX) else None
                mapping.notes[header] = "as mapped" + (f": {_balance_note(service)}" if service else "")
            else:
                mapping.ignored.append(header)
                mapping.notes[header] = "ignored as mapped"
            continue
        name = synonyms.get(norm)
        if name and name not in taken:
            mapping.columns[index] = name
            taken.add(name)
    return taken


def _balance_candidates(mapping: Mapping, *, headers: list[str], services: list[ServiceRef],
                        taken: set[str]) -> dict[str, list[int]]:
    """Balance field → the columns left that name that service's balance. Every other column left is
    ignored, with a note when it mentions a service among other words."""
    candidates: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        norm = normalize_header(header)
        if not norm or index in mapping.columns or header in mapping.ignored:
            continue
        service = _balance_service(norm, services)
        if service is not None:
            target = f"{BALANCE_PREFIX}{service.code}"
            if target in taken:
                mapping.ignored.append(header)
                mapping.notes[header] = f"the {service.name} balance is read from the column mapped to it"
            else:
                candidates.setdefault(target, []).append(index)
            continue
        mapping.ignored.append(header)
        if set(norm.split()) & _LOOKS_LIKE_BALANCE:
            _suggest(mapping, header=header, norm=norm, services=services)
            continue
        mentioned = _mentioned_service(norm, services)
        if mentioned:
            service, words = mentioned
            mapping.notes[header] = (
                f"names {service.name} but also says '{words}', so it is not read as the {service.name} "
                f"balance; if it holds the balance, map it: '{header} = {BALANCE_PREFIX}{service.code}'")
    return candidates


def _settle_balance_columns(mapping: Mapping, *, headers: list[str], services: list[ServiceRef],
                            candidates: dict[str, list[int]]) -> None:
    """A service's balance read from its one candidate column; two candidates are the manager's to settle."""
    by_code = {service.code: service for service in services}
    for target, indexes in candidates.items():
        service = by_code[target[len(BALANCE_PREFIX):]]
        if len(indexes) == 1:
            mapping.columns[indexes[0]] = target
            mapping.notes[headers[indexes[0]]] = _balance_note(service)
            continue
        names = " and ".join(f"'{headers[i]}'" for i in indexes)
        mapping.problems.append(
            f"columns {names} both look like the {service.name} balance: say which one holds it, "
            f"e.g. '{headers[indexes[0]]} = {target}' and '{headers[indexes[1]]} =' to ignore the other")


def _words(text: str) -> set[str]:
    out = set()
    for word in text.split():
        out.add(word)
        out.add(_NICKNAMES.get(word, word))
        if word.endswith("s"):
            out.add(word[:-1])
    return out


def suggest_service(norm: str, services: list[ServiceRef]) -> ServiceRef | None:
    """The service a balance-like header most likely means: shared words, nicknames ("Botox" for a
    neurotoxin), a word inside the service's name ("Facials" in "HydraFacial"). None when nothing fits."""
    header_words = _words(" ".join(w for w in norm.split() if w not in _LOOKS_LIKE_BALANCE and w != "units"))
    best, best_score = None, 0
    for service in services:
        names = " ".join(_service_names(service))
        service_words = _words(names) | {_NICKNAMES[w] for w in names.split() if w in _NICKNAMES}
        if "toxin" in names:
            service_words.add("toxin")
        if service.is_credit:
            service_words.add("credit")
        score = 3 * len(header_words & service_words)
        score += sum(1 for w in header_words if len(w) >= 4 and w in names.replace(" ", ""))
        if score > best_score:
            best, best_score = service, score
    return best


def _suggest(mapping: Mapping, *, header: str, norm: str, services: list[ServiceRef]) -> None:
    """A balance-like header: a file-level question for the manager, with the likely service."""
    service = suggest_service(norm, services)
    target = f"{BALANCE_PREFIX}{service.code}" if service else ""
    mapping.suggestions.append({"header": header, "target": target, "service": service.name if service else ""})
    guess = (f"is it the {service.name} balance? Confirm '{header} = {target}'" if service
             else "say which service's balance it is, e.g. '" + header + " = " + BALANCE_PREFIX + "<service code>'")
    mapping.notes[header] = (f"looks like a balance but names no service exactly: {guess}, "
                             f"or ignore it with '{header} ='")
    mapping.problems.append(f"column '{header}' looks like a balance: {guess}, or ignore it with '{header} ='")

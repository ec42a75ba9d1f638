"""What a member's SMS reply asks for: stop (an opt-out, recorded at once), start (lift an earlier
opt-out), review (looks like a refusal: a person at the practice reads it, and automated texts to the
member are held until then) or nothing.

The rule (TCPA; the FCC's 2025 rule accepts any reasonable way of saying stop):

- The text is normalised first: invisible characters (zero-width spaces and joiners) dropped,
  Unicode compatibility forms, upper case, Cyrillic and Greek letters that look Latin read as Latin
  ("ЅТОР"), a zero between letters as O ("ST0P"), apostrophes dropped, every other punctuation mark
  and run of whitespace one space, a word spelled out letter by letter joined ("S T O P",
  "s.t.o.p"); "OPT OUT" / "OPT-OUT" read as OPTOUT, "STOP ALL" as STOPALL, "UN SUBSCRIBE" as
  UNSUBSCRIBE.
- **stop**: the message is *short* — at most `SHORT_CHARS` (60) characters and `SHORT_WORDS` (10)
  words once normalised — and carries one of Twilio's keywords (STOP, STOPALL, UNSUBSCRIBE, CANCEL,
  END, QUIT, REVOKE, OPTOUT) as its first or last word, or with only filler around it ("please",
  "texting me", "thanks", "now"…): "Stop.", "STOP please", "opt out", "please stop texting me",
  "Stop! I already paid". Not a question ("Can I stop by at 3?") and not a keyword aimed at something
  else ("Cancel my appointment", "stop by", "end of the month"): those are *review*.
- **start**: START, UNSTOP or YES as the whole message (with filler at most), as Twilio does: "YES"
  in a sentence means too many things to lift an opt-out on.
- **review**: any other message that carries a keyword anywhere, whatever its length, or a refusal
  in other words ("don't text me", "leave me alone", "remove me", "no more messages", "wrong
  number", "not interested", "take me off your list"…). Nothing is recorded as an opt-out: a person
  decides, and until then the member's automated texts wait.
- **other**: anything else ("Thanks, will do", "ok").

The text is never logged; the caller keeps it only on the hold a person reviews."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

STOP, START, REVIEW, OTHER = "stop", "start", "review", "other"

SHORT_CHARS = 60
SHORT_WORDS = 10

STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
# Words that may surround a keyword without changing what it asks for.
FILLER = frozenset({
    "PLEASE", "PLS", "PLZ", "NOW", "THANKS", "THANK", "YOU", "THX", "TY", "OK", "OKAY", "JUST", "ALL",
    "TEXTING", "TEXTS", "TEXT", "MESSAGING", "MESSAGES", "MESSAGE", "MSGS", "SMS", "SENDING", "CONTACTING",
    "ME", "MY", "NUMBER", "THIS", "THESE", "THEM", "IT", "I", "WANT", "TO", "WOULD", "LIKE", "FROM",
    "LIST", "AGAIN", "SUBSCRIBE", "AND", "THE", "US", "SIR", "MAAM", "HI", "HELLO", "ALREADY",
})
# A keyword followed by one of these is about something else: a person reads it.
ELSEWHERE = frozenset({"BY", "IN", "OVER", "OF", "APPOINTMENT", "APPT", "APPOINTMENTS", "BOOKING", "VISIT",
                       "MEMBERSHIP", "ORDER", "RESERVATION", "SESSION", "TREATMENT", "UP"})
QUESTION_WORDS = frozenset({"CAN", "COULD", "WILL", "WOULD", "SHOULD", "WHEN", "WHAT", "HOW", "WHY", "WHERE",
                            "IS", "DO", "DOES", "DID", "ARE", "MAY", "WHO"})
REFUSALS = (
    "DONT TEXT", "DO NOT TEXT", "DONT MESSAGE", "DO NOT MESSAGE", "DONT CONTACT", "DO NOT CONTACT",
    "DONT CALL", "DO NOT CALL", "DONT SEND", "DO NOT SEND", "LEAVE ME ALONE", "REMOVE ME", "REMOVE MY",
    "TAKE ME OFF", "TAKE MY NUMBER", "NO MORE", "WRONG NUMBER", "WRONG PERSON", "NOT INTERESTED",
    "UNSUB", "LOSE MY NUMBER", "DELETE MY NUMBER", "BLOCK", "HARASS", "SPAM", "NO THANKS", "NO THANK YOU",
    "OFF YOUR LIST", "OFF THE LIST", "DONT WANT", "DO NOT WANT", "NO LONGER",
)

# Capital Cyrillic and Greek letters drawn like Latin ones (after upper-casing).
_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХЅІЈԚԜΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEKMHOPCTYXSIJQWABEZHIKMNOPTYX")
_SPELLED_OUT = re.compile(r"(?<!\S)(?:[A-Z] ){2,}[A-Z](?!\S)")
_JOINS = ((re.compile(r"\bOPT (?:ME )?OUT\b"), "OPTOUT"), (re.compile(r"\bSTOP ALL\b"), "STOPALL"),
          (re.compile(r"\bUN SUBSCRIBE\b"), "UNSUBSCRIBE"))


@dataclass(frozen=True)
class Reply:
    kind: str            # stop | start | review | other
    keyword: str = ""    # the keyword read, or the refusal phrase; never the text


def normalise(text: str) -> str:
    text = "".join(ch for ch in (text or "") if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKC", text).upper().translate(_LOOKALIKES)
    text = re.sub(r"(?<=[A-Z])0|0(?=[A-Z])", "O", text)
    text = re.sub(r"['’‘`´]", "", text)
    text = re.sub(r"[^\w]+|_", " ", text).strip()
    text = _SPELLED_OUT.sub(lambda m: m.group().replace(" ", ""), text)
    for pattern, joined in _JOINS:
        text = pattern.sub(joined, text)
    return text


def _is_question(raw: str, words: list[str]) -> bool:
    return "?" in raw or (bool(words) and words[0] in QUESTION_WORDS)


def _aimed_elsewhere(words: list[str], index: int) -> bool:
    after = words[index + 1:index + 3]
    if after[:1] and after[0] in ELSEWHERE:
        return True
    return len(after) == 2 and after[0] in {"MY", "THE", "OUR"} and after[1] in ELSEWHERE


def _hard_stop(raw: str, words: list[str]) -> str:
    """The keyword when the message is a plain opt-out, else ""."""
    if len(" ".join(words)) > SHORT_CHARS or len(words) > SHORT_WORDS or _is_question(raw, words):
        return ""
    found = [(i, w) for i, w in enumerate(words) if w in STOP_KEYWORDS]
    if not found:
        return ""
    if any(_aimed_elsewhere(words, i) for i, _ in found):
        return ""
    rest = [w for w in words if w not in STOP_KEYWORDS]
    first, last = found[0][0], found[-1][0]
    if first == 0 or last == len(words) - 1 or all(w in FILLER for w in rest):
        return found[0][1]
    return ""


def classify(text: str) -> Reply:
    raw = text or ""
    norm = normalise(raw)
    words = norm.split()
    if not words:
        return Reply(OTHER)
    keyword = _hard_stop(raw, words)
    if keyword:
        return Reply(STOP, keyword)
    starts = [w for w in words if w in START_KEYWORDS]
    if starts and len(words) <= 4 and all(w in START_KEYWORDS or w in FILLER for w in words) \
            and not any(w in STOP_KEYWORDS for w in words):
        return Reply(START, starts[0])
    for word in words:
        if word in STOP_KEYWORDS:
            return Reply(REVIEW, word)
    padded = f" {norm} "
    for phrase in REFUSALS:
        if f" {phrase} " in padded or (phrase in ("UNSUB", "BLOCK", "HARASS", "SPAM") and phrase in norm):
            return Reply(REVIEW, phrase)
    return Reply(OTHER)

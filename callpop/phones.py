"""Phone numbers: one normal form for the tracker, the directory and the importer.

Callers reach the PBX as ``89161234567``, ``+79161234567``, ``0079161234567`` or with
spaces; a client typed into 1C as ``8 (916) 123-45-67`` must match all of them. We
normalise to E.164 with ``phonenumbers`` (the numbering plans are data, not code we
should write) and keep the last 10 national digits as a fallback key: 8 would be too few,
Moscow's 495-xxx-xx-xx and 985-xxx-xx-xx numbers share their last 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

__all__ = ["WITHHELD", "PhoneKey", "format_display", "is_withheld", "may_dial", "phone_key"]

# What Asterisk and SIP carriers put in CallerIDNum when there is no number to show.
WITHHELD = frozenset({"", "<unknown>", "unknown", "anonymous", "restricted", "private",
                      "unavailable", "withheld", "s"})

# A number the PBX masked because the caller withheld it ("+31260xxxxxx"): no number to show.
_MASKED = re.compile(r"^\+?\d*[xX*]{3,}$")
_DIGITS = re.compile(r"\d")
_ALLOWED = re.compile(r"^[\d\s()+\-./]*$")
# "+7 916 123-45-67 доб. 12" / "ext 12" / "x12" / "#12": an office extension typed after the
# number in 1C or a spreadsheet; the caller ID never carries it, so matching ignores it.
_EXTENSION_SUFFIX = re.compile(r"[\s,;]*(?:доб\.?|ext\.?|x|#)\s*\d{1,6}\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PhoneKey:
    """How a number is stored and looked up.

    ``e164`` is None when the number cannot be read as a valid public number in the
    default region; ``tail10`` is the last 10 national digits (None when there are fewer
    than 10, or when the number cannot be anyone's: see ``_tail10``);
    ``external`` is False for short internal extensions, which are never looked up.
    """

    raw: str
    e164: str | None
    tail10: str | None
    external: bool

    @property
    def display_key(self) -> str:
        """The form shown to users and sent in call events: E.164, else the raw digits."""
        return self.e164 or self.raw


def is_withheld(number: str | None) -> bool:
    """No number to show: none sent, a placeholder, or one the PBX masked."""
    if number is None:
        return True
    text = number.strip()
    return text.lower() in WITHHELD or _MASKED.match(text) is not None


@lru_cache(maxsize=65536)
def phone_key(raw: str, region: str = "RU", min_external_digits: int = 7) -> PhoneKey:
    """Normalise *raw*; cached because the same callers ring again and again."""
    original = raw.strip()
    text = _EXTENSION_SUFFIX.sub("", original) if _DIGITS.search(original) else original
    digits = "".join(_DIGITS.findall(text))
    if is_withheld(text) or not digits or not _ALLOWED.match(text):
        return PhoneKey(raw=original, e164=None, tail10=None, external=False)
    if len(digits) < min_external_digits:
        return PhoneKey(raw=original, e164=None, tail10=None, external=False)
    e164: str | None = None
    national: str | None = None
    candidate = text
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:].lstrip()
    elif region == "RU" and candidate.startswith("810"):
        # Russian international prefix (8, wait for tone, 10)
        candidate = "+" + candidate[3:]
    try:
        parsed = phonenumbers.parse(candidate, region)
        if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed):
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            national = str(parsed.national_number)
    except phonenumbers.NumberParseException:
        e164 = None
    if e164 is None and not text.startswith("+"):
        # "79161234567" without a plus: a full international number typed without "+"
        try:
            parsed = phonenumbers.parse("+" + digits, None)
            if phonenumbers.is_valid_number(parsed):
                e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                national = str(parsed.national_number)
        except phonenumbers.NumberParseException:
            e164 = None
    if national is not None:  # a valid number: its national number is the key's source
        return PhoneKey(raw=original, e164=e164, tail10=national[-10:] if len(national) >= 10 else None,
                        external=True)
    plain = not text.startswith(("+", "00")) and not (region == "RU" and text.startswith("810"))
    return PhoneKey(raw=original, e164=None, tail10=_tail10(candidate, digits, region, plain), external=True)


def _tail10(candidate: str, digits: str, region: str, plain: bool) -> str | None:
    """The fallback key, only for a number that could be someone's: a valid one; one
    phonenumbers calls possible *and* shaped like its country's numbers (a wrong country
    code, a range newer than the metadata); or a plain 10-digit national number, perhaps
    after a 0/8 trunk prefix (a foreign number typed without its country code). Junk
    (``+70000000000``, twenty digits) gets none, so it cannot match junk stored numbers.
    A valid number's tail is its national number's, taken in ``phone_key``."""
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    nsn = phonenumbers.national_significant_number(parsed)
    if phonenumbers.is_possible_number(parsed) and _shaped_like_its_country(parsed, nsn):
        return nsn[-10:] if len(nsn) >= 10 else None
    if plain and (len(digits) == 10 or (len(digits) == 11 and digits[0] in "08")):
        tail = digits[-10:]
        if tail[0] != "0" and len(set(tail)) > 1:  # no national number starts with 0 or is one digit
            return tail
    return None


def _shaped_like_its_country(parsed: phonenumbers.PhoneNumber, nsn: str) -> bool:
    """Does the national number fit the general pattern of its country (phonenumbers'
    metadata)? is_possible_number checks the length only."""
    code = parsed.country_code
    if code is None:
        return False
    for region in phonenumbers.region_codes_for_country_code(code):
        meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        pattern = meta.general_desc.national_number_pattern if meta and meta.general_desc else None
        if pattern and re.fullmatch(pattern, nsn):
            return True
    return False


@lru_cache(maxsize=65536)
def format_display(number: str | None, region: str = "RU") -> str:
    """A number as people read it: ``+7 916 123-45-67``; anything unreadable as given.
    Cached: a pop formats the caller's number and the client's stored ones, which are the
    same numbers, and phonenumbers' parse is ~0.1 ms of the pop's CPU."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_valid_number(parsed):
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def may_dial(e164: str, allowed: tuple[str, ...], region: str) -> bool:
    """Whether click-to-call may dial *e164* (``+79161234567``).

    *allowed* are regular expressions matched against the digits without ``+`` (``[pbx]
    originate_allowed``); none means numbers of *region*'s country only, so a typo or a
    planted "client" number never dials a premium international line.
    """
    digits = e164.lstrip("+")
    if allowed:
        return any(re.search(pattern, digits) for pattern in allowed)
    code = str(phonenumbers.country_code_for_region(region))
    return digits.startswith(code)

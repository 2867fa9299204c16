"""Personal data in text: e-mail addresses, phone numbers, payment card numbers (Luhn), national
ids (US SSN, UK NINO, FR NIR with its key, ES DNI with its letter, IT codice fiscale) and IBANs
(mod-97). Patterns are RE2 (linear time); checksums remove most false positives of bare digit
runs. :func:`find_pii` returns counts per kind, never the values: a finding must not copy the
personal data it found into the evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import re2

_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_INTL = re2.compile(r"\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}")
_PHONE_NANP = re2.compile(r"(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b")
_CARD = re2.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_SSN = re2.compile(r"\b(\d{3})-(\d{2})-(\d{4})\b")
_NINO = re2.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_NIR = re2.compile(r"\b([12]) ?(\d{2}) ?(0[1-9]|1[0-2]) ?(\d{2}|2[AB]) ?(\d{3}) ?(\d{3}) ?(\d{2})\b")
_DNI = re2.compile(r"\b(\d{8})-?([A-Z])\b")
_CF = re2.compile(r"\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b")
_IBAN = re2.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(text: str) -> int:
    found = 0
    for match in _CARD.finditer(text):
        digits = _digits(match.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            found += 1
    return found


def _phones(text: str) -> int:
    found = 0
    for match in _PHONE_INTL.finditer(text):
        digits = _digits(match.group(0))
        if 8 <= len(digits) <= 15 and not (len(digits) >= 13 and luhn_ok(digits)):
            found += 1
    return found + sum(1 for _ in _PHONE_NANP.finditer(text))


def _ssn(match: re2._Match) -> bool:
    area, group, serial = match.group(1), match.group(2), match.group(3)
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _nir(match: re2._Match) -> bool:
    body = "".join(match.groups()[:6]).replace("2A", "19").replace("2B", "18")
    return bool(97 - int(body) % 97 == int(match.group(7)))


def _dni(match: re2._Match) -> bool:
    return bool(_DNI_LETTERS[int(match.group(1)) % 23] == match.group(2))


def _national_ids(text: str) -> int:
    checks: tuple[tuple[re2._Regexp, Callable[[re2._Match], bool]], ...] = (
        (_SSN, _ssn),
        (_NINO, lambda _: True),
        (_NIR, _nir),
        (_DNI, _dni),
        (_CF, lambda _: True),
    )
    return sum(1 for pattern, valid in checks for m in pattern.finditer(text) if valid(m))


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _ibans(text: str) -> int:
    return sum(1 for m in _IBAN.finditer(text) if iban_ok(m.group(0)))


DETECTORS: dict[str, Callable[[str], int]] = {
    "email": lambda text: sum(1 for _ in _EMAIL.finditer(text)),
    "phone": _phones,
    "card_number": _cards,
    "national_id": _national_ids,
    "iban": _ibans,
}


def find_pii(text: str, kinds: Iterable[str]) -> dict[str, int]:
    """``kind → number found`` for the kinds with at least one finding."""
    counts = {kind: DETECTORS[kind](text) for kind in kinds}
    return {kind: n for kind, n in counts.items() if n}

"""De-identification of patient records (HIPAA Safe Harbor style), applied before anything is stored.

- The patient's own id becomes a pseudonym, an HMAC of the source id under a per-installation secret
  (`installation_key`, a file in the data dir): stable across re-ingests, not a plain hash that could be matched
  against a guessed MRN.
- Every date of one patient moves by the same keyed offset (30 to 730 days forward), so intervals and order are
  kept; the time of day stays, the time zone is dropped.
- Ages over 89 are one group ("90+") and such a patient's birth date is not kept at all.
- Free text (narratives, notes) loses the patient's known identifiers (names, address, phone, identifier values,
  birth date) and then goes through the PHI guard (`ingest.phi`), which masks names, dates, phones and the like.
Names, street lines, city, postal code, telecom and identifier values are never copied: the reader keeps only
what is listed in `ingest/readers/fhir.py`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from ingest.phi import mask, name_words, scan

KEY_FILE = "deid.key"
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 30, 730


def installation_key(data_dir: Path | str) -> bytes:
    """This installation's de-identification secret (32 random bytes), made on first use as <data_dir>/deid.key
    (mode 0600). Losing it changes every pseudonym and date offset at the next ingest."""
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    text = path.read_text().strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"{path} is not a de-identification key (64 hex digits); restore it from a backup, or "
                         "delete it to start new pseudonyms (patients ingested before then get new ids)")
    return bytes.fromhex(text)


class PatientDeid:
    """The de-identification of one patient: pseudonym, date shift and free-text masking."""

    def __init__(self, key: bytes, source_id: str, known: list[str] | None = None):
        digest = hmac.new(key, f"patient:{source_id}".encode(), hashlib.sha256).digest()
        self.pseudonym = "P-" + digest[:5].hex()
        span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
        self.shift_days = MIN_SHIFT_DAYS + int.from_bytes(digest[8:12], "big") % span
        # Longest first, so "990 Dare Rue Unit 50" goes before "50"; very short values (a digit) are left to the guard.
        self.known = sorted({k.strip() for k in known or () if k and len(k.strip()) >= 3}, key=len, reverse=True)

    # -- dates
    def shift(self, value) -> str | None:
        """A FHIR date or dateTime (str, date or datetime) moved by the offset, at its own precision: "YYYY",
        "YYYY-MM", "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS" (no time zone)."""
        if value is None:
            return None
        delta = dt.timedelta(days=self.shift_days)
        if isinstance(value, dt.datetime):
            return (value.replace(tzinfo=None) + delta).strftime("%Y-%m-%dT%H:%M:%S")
        if isinstance(value, dt.date):
            return (value + delta).isoformat()
        s = str(value).strip()
        if re.fullmatch(r"\d{4}", s):
            return str((dt.date(int(s), 7, 1) + delta).year)
        if re.fullmatch(r"\d{4}-\d{2}", s):
            d = dt.date(int(s[:4]), int(s[5:7]), 15) + delta
            return f"{d.year:04d}-{d.month:02d}"
        try:
            t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return None
        return self.shift(t if "T" in s else t.date())

    # -- free text
    def text(self, value: str) -> str:
        """Free text without the patient's known identifiers and without what the PHI guard finds."""
        out = value
        for k in self.known:
            out = re.sub(re.escape(k), "[REDACTED]", out, flags=re.I)
        found = scan(out, name_words(scan(out)))
        return mask(out, found)


def age_years(birth: str | None, at: str | None) -> int | None:
    """Whole years between two ISO dates (both shifted alike, so the age is the true one)."""
    if not birth or not at or len(birth) < 10 or len(at) < 10:
        return None
    b, a = dt.date.fromisoformat(birth[:10]), dt.date.fromisoformat(at[:10])
    return a.year - b.year - ((a.month, a.day) < (b.month, b.day))


def age_band(years: int | None) -> str:
    """Five-year bands; everyone over 89 is "90+" (Safe Harbor)."""
    if years is None:
        return "unknown"
    if years > 89:
        return "90+"
    lo = (max(years, 0) // 5) * 5
    return f"{lo}-{lo + 4}"

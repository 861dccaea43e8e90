"""Person-linkage comparison features, computed where the clear values are (the parsers).

Nothing clear leaves this module: names, birth dates, phones, addresses and identifiers become
keyed encodings under the pseudonym secret.

- Exact comparisons use HMACs of normalised tokens (``omicslake.pseudonym.pseudonym``).
- Fuzzy name and address comparisons use a cryptographic long-term key (CLK, Schnell, Bachteler
  and Reiher 2009): the padded bigrams of each token are hashed into a 1024-bit Bloom filter with
  keyed double hashing (HMAC-SHA1 + i * HMAC-MD5), so the Dice coefficient of two filters
  approximates the bigram similarity of the two strings without revealing them. Tokens are hashed
  as a set, so swapped given and family names give the same filter.
- Chinese names are compared in characters and in toneless pinyin (pypinyin), so a record in
  characters matches one in pinyin and homophone miswritings (伟/玮) still agree.
- Birth dates are compared field by field (year, month, day keyed separately, month and day in
  one namespace so a day/month transposition can be seen).
- The national resident ID (居民身份证号码, GB 11643) and the link keys of an identifier are
  keyed in the core (``omicslake.identifiers``, re-exported here), where the person index's
  cross-reference reads key them too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from functools import lru_cache

from connectors.clinical_records import demographics
from omicslake.identifiers import identifier_keys as identifier_keys  # the parsers' import path
from omicslake.identifiers import is_national_id as is_national_id
from omicslake.identifiers import parse_resident_id
from omicslake.identifiers import resident_id_check_digit as resident_id_check_digit
from omicslake.pseudonym import pseudonym

CLK_BITS = 1024
CLK_HASHES = 20
ADDRESS_HASHES = 8
# Polyphonic characters read differently as surnames than pypinyin's default reading.
SURNAME_READINGS = {"单": "shan", "曾": "zeng", "解": "xie", "区": "ou", "仇": "qiu", "查": "zha",
                    "朴": "piao", "盖": "ge", "覃": "qin", "缪": "miao", "乐": "yue", "尉": "yu",
                    "种": "chong", "翟": "zhai", "车": "che", "重": "chong", "柏": "bai"}
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
                     "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "端木", "澹台", "南宫", "西门")


# --- names ---------------------------------------------------------------------------------


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in text)


def _clean(text: str | None) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def _latin(text: str) -> str:
    """Toneless lower-case letters only: ``Lǚ Wei-Ming`` -> ``luweiming``."""
    folded = unicodedata.normalize("NFKD", text.replace("ü", "u").replace("Ü", "U"))
    return re.sub(r"[^a-z]", "", folded.encode("ascii", "ignore").decode().lower()).replace("v", "u")


def pinyin(text: str | None, surname: bool = False) -> str | None:
    """Toneless pinyin of a name part (characters or Latin), syllables joined."""
    text = _clean(text)
    if not text:
        return None
    if not _is_cjk(text):
        return _latin(text) or None
    from pypinyin import lazy_pinyin

    head = SURNAME_READINGS.get(text[0]) if surname else None
    parts = ([head] + lazy_pinyin(text[1:])) if head else lazy_pinyin(text)
    return _latin("".join(parts)) or None


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    """Every toneless Hanyu Pinyin syllable, from pypinyin's dictionary."""
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    out = set()
    for readings in pinyin_dict.values():
        out.update(_latin(to_normal(p)) for p in readings.split(","))
    return frozenset(s for s in out if s)


def last_syllable(given: str | None) -> str | None:
    """The last syllable of a given name: what 小明/阿明 and 伟明 share (a nickname's root)."""
    text = _clean(given)
    if not text:
        return None
    if _is_cjk(text):
        return pinyin(text[-1])
    words = [w for w in re.split(r"[\s\-'’]+", text) if w]
    word = _latin(words[-1]) if words else ""
    syllables = _syllables()
    for cut in range(max(0, len(word) - 6), len(word)):
        if word[cut:] in syllables and _segments(word[:cut], syllables):
            return word[cut:]
    return word or None


def _segments(word: str, syllables: frozenset[str]) -> bool:
    ok = [True] + [False] * len(word)
    for end in range(1, len(word) + 1):
        ok[end] = any(ok[s] and word[s:end] in syllables for s in range(max(0, end - 6), end))
    return ok[-1]


def split_cjk_name(text: str | None) -> tuple[str | None, str | None]:
    """(family, given) of a name written in characters without separation (``欧阳娜娜``)."""
    text = "".join(_clean(text).split())
    if not text:
        return None, None
    n = 2 if text[:2] in COMPOUND_SURNAMES and len(text) > 2 else 1
    return text[:n], text[n:] or None


def preferred_name(names: Iterable[tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    """The name to compare: the first written in characters, else the first given."""
    names = [(_clean(f) or None, _clean(g) or None) for f, g in names if (f or g)]
    cjk = (n for n in names if _is_cjk(f"{n[0] or ''}{n[1] or ''}"))
    return next(cjk, names[0] if names else (None, None))


# --- Bloom-filter encodings ----------------------------------------------------------------


@lru_cache(maxsize=8)
def _clk_keys(key: bytes) -> tuple[bytes, bytes]:
    return (hmac.new(key, b"clk-sha1", hashlib.sha256).digest(),
            hmac.new(key, b"clk-md5", hashlib.sha256).digest())


def clk(key: bytes, tokens: Iterable[str | None], hashes: int = CLK_HASHES) -> str | None:
    """Base64 of the 1024-bit CLK of the tokens' padded bigrams; None without tokens.

    Long strings (addresses) take fewer hash functions so their filters do not fill up."""
    grams = {t[i:i + 2] for tok in tokens if tok for t in [f" {tok} "] for i in range(len(t) - 1)}
    if not grams:
        return None
    k1, k2 = _clk_keys(key)
    bits = bytearray(CLK_BITS // 8)
    for gram in grams:
        g = gram.encode()
        h1 = int.from_bytes(hmac.new(k1, g, hashlib.sha1).digest(), "big")
        h2 = int.from_bytes(hmac.new(k2, g, hashlib.md5).digest(), "big") | 1  # odd: i * h2 never repeats
        for i in range(hashes):
            pos = (h1 + i * h2) % CLK_BITS
            bits[pos >> 3] |= 1 << (pos & 7)
    return base64.b64encode(bytes(bits)).decode()


def clk_positions(encoded: str | None) -> list[int] | None:
    """The set bits of a CLK, for a Dice coefficient in SQL (``list_intersect``)."""
    if not encoded:
        return None
    import numpy as np

    bits = np.unpackbits(np.frombuffer(base64.b64decode(encoded), np.uint8), bitorder="little")
    return np.flatnonzero(bits).tolist()


def dice(a: str | None, b: str | None) -> float | None:
    pa, pb = clk_positions(a), clk_positions(b)
    if not pa or not pb:
        return None
    return 2 * len(set(pa) & set(pb)) / (len(pa) + len(pb))


# --- the other fields ----------------------------------------------------------------------


def normalise_phone(value: str | None) -> str | None:
    """Digits only, without the +86/0086 country prefix; fewer than 7 digits is no number."""
    digits = re.sub(r"\D", "", value or "")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 11:
            digits = digits[len(prefix):]
    return digits if len(digits) >= 7 else None


def normalise_address(text: str | None) -> str | None:
    """NFKC, upper case, without spaces and punctuation: formatting does not separate addresses."""
    norm = unicodedata.normalize("NFKC", text or "").upper()
    norm = "".join(ch for ch in norm if ch.isalnum())
    return norm or None


def name_features(key: bytes, family: str | None, given: str | None) -> dict:
    """Keyed name encodings: pinyin keys (family and given in one namespace, so a swap shows),
    the given name's last syllable (nicknames), CLKs of the parts, the whole, and the characters."""
    fam_py, giv_py = pinyin(family, surname=True), pinyin(given)
    root = last_syllable(given)
    chars = f"{family or ''}{given or ''}"
    return {
        "family_pinyin_key": pseudonym(key, fam_py, "namepy") if fam_py else None,
        "given_pinyin_key": pseudonym(key, giv_py, "namepy") if giv_py else None,
        "given_root_key": pseudonym(key, root, "namepy") if root else None,
        "family_clk": clk(key, [fam_py]),
        "given_clk": clk(key, [giv_py]),
        "name_clk": clk(key, [fam_py, giv_py]),
        "name_char_clk": clk(key, ["".join(chars.split())]) if _is_cjk(chars) else None,
    }


def birth_features(key: bytes, birth: date | None) -> dict:
    if birth is None:
        return {"birth_year_key": None, "birth_month_key": None, "birth_day_key": None}
    return {"birth_year_key": pseudonym(key, f"{birth.year:04d}", "birthyear"),
            "birth_month_key": pseudonym(key, f"{birth.month:02d}", "birthmd"),
            "birth_day_key": pseudonym(key, f"{birth.day:02d}", "birthmd")}


def identity_features(key: bytes, names: Iterable[tuple[str | None, str | None]], birth: date | None,
                      sex: str | None, phones: Iterable[str | None], addresses: Iterable[str | None],
                      postal: str | None, national_ids: Iterable[str | None] = ()) -> dict:
    """Every linkage column of ``silver.patient_identities`` for one source record.

    A valid resident ID gives the birth date and sex (it carries both, check-digit protected);
    the record's own values are used when there is none.
    """
    rid = next((r for r in map(parse_resident_id, national_ids) if r), None)
    if rid is not None:
        birth, sex = rid.birth, rid.sex
    family, given = preferred_name(names)
    phone_set = sorted({p for p in map(normalise_phone, phones) if p})
    address = next((a for a in map(normalise_address, addresses) if a), None)
    return {
        **demographics(key, sex, birth, family, given, postal),
        **name_features(key, family, given),
        **birth_features(key, birth),
        "phone_keys": [pseudonym(key, p, "phone") for p in phone_set] or None,
        "address_key": pseudonym(key, address, "address") if address else None,
        "address_clk": clk(key, [address], ADDRESS_HASHES) if address else None,
    }

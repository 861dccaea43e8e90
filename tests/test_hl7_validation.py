"""HL7 v2 validation and reading at ingest speed, pinned to what the full parsers say.

``hl7.validate`` asks hl7apy once per message layout; its verdict (accepted, or refused with
hl7apy's own error text) must be the one hl7apy's full tolerant parse of each message gives.
``hl7_clinical.Reader`` splits messages itself; every lookup must read what python-hl7's parse
reads. Both are checked on the shipped files and on seeded mutations of them (separators,
escapes, blanks, unknown and repeated segments, other versions and encoding characters).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import hl7 as python_hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

import connectors.hl7 as hl7_module
from connectors import hl7_clinical
from connectors.hl7 import HL7Error, check_header, for_hl7apy, split_messages, validate

DATA = Path(__file__).parent / "data" / "hl7"
PIECES = ["|", "^", "~", "\\", "&", "#", " ", "  ", "\t", "A", "0", ".", "+0800", "-", "\u00a0", "中",
          "\\E\\", "\\S\\", "\\F\\", "\\T\\", "\\R\\", "\\P\\", "\\X41\\", "\\.br\\", "\\H\\", '""']
NAMES = ["XYZ", "ZAB", "OBX", "PID", "NTE", "A1B", "QRD", "IN1", "MSH", "TQ1", "UAC", "PRT", "obx", "OB"]
ENCODINGS = ["^~\\&", "^~\\&#", "^~\\", "^^\\&", "^~&\\"]
VERSIONS = ["2.3", "2.4", "2.6", "2.7", "2.8", "2.9", "2.2", "2.1", "2.5.1^CHN"]


def shipped() -> list[str]:
    return [m.text for p in sorted(DATA.glob("*.hl7")) for m in split_messages(p.read_bytes())]


def mutate(rng: random.Random, text: str) -> str:
    segs = text.split("\r")[:-1]
    for _ in range(rng.randint(1, 5)):
        k = rng.randrange(1, len(segs)) if len(segs) > 1 and rng.random() > 0.1 else 0
        s, op = segs[k], rng.random()
        if op < 0.45 and len(s) > 9:
            p = rng.randrange(4 if k else 9, len(s))
            s = s[:p] + rng.choice(PIECES) * rng.randint(1, 2) + s[p + rng.choice((0, 0, 1, 3)):]
        elif op < 0.6 and k:
            s = rng.choice(NAMES) + s[3:]
        elif op < 0.7:
            s += rng.choice("|^~&").join(rng.choice(["", "x", " ", "&", "~", "^y"]) for _ in range(4))
        elif op < 0.78:
            extra = ["", " ", "NTE", "ZZZ|a", "OBX|", segs[rng.randrange(len(segs))]]
            segs.insert(max(k, 1), rng.choice(extra))
            continue
        elif op < 0.86:
            s = s.replace("|P|2.5", f"|P|{rng.choice(VERSIONS)}|", 1) if k == 0 else s
        elif op < 0.93:
            segs[0] = segs[0].replace("^~\\&", rng.choice(ENCODINGS), 1)
            continue
        else:
            s = s.replace(rng.choice("|^~&"), rng.choice("|^~&\t"), 1)
        segs[k] = s
    return "\r".join(segs) + "\r"


def hl7apy_verdict(text: str) -> tuple:
    """What ``parse`` answered before ``validate``: hl7apy's full parse of every message."""
    try:
        h = check_header(text)
    except HL7Error as exc:
        return "refused", str(exc), exc.ack_code, exc.control_id
    try:
        parse_message(for_hl7apy(text, h.version), validation_level=VALIDATION_LEVEL.TOLERANT,
                      find_groups=False)
    except (HL7apyException, ValueError, KeyError, IndexError) as exc:
        return "refused", f"hl7apy cannot parse it: {exc}", "AE", h.control_id
    return "accepted", h.control_id


def layout_verdict(text: str) -> tuple:
    try:
        return "accepted", validate(text).control_id
    except HL7Error as exc:
        return "refused", str(exc), exc.ack_code, exc.control_id


@pytest.fixture()
def cold_caches(monkeypatch):
    for name in ("_SEGMENT_VERDICTS", "_MESSAGE_LAYOUTS", "_MESSAGE_REFUSALS"):
        monkeypatch.setattr(hl7_module, name, {})


@pytest.mark.parametrize("seed", [1, 2])
def test_validate_gives_hl7apys_verdict_on_every_message(cold_caches, seed):
    rng = random.Random(seed)
    base = shipped()
    texts = base + [mutate(rng, rng.choice(base)) for _ in range(200)]
    texts += [rng.choice(texts) for _ in range(100)]  # again, from the remembered verdicts
    verdicts = [(hl7apy_verdict(t), layout_verdict(t)) for t in texts]
    assert [full for full, _ in verdicts] == [fast for _, fast in verdicts]
    refused = {full[1].split(": ")[1] for full, _ in verdicts if full[1].startswith("hl7apy cannot")}
    assert {"Invalid name for Segment", "Invalid encoding chars"} <= refused  # the mutations reach hl7apy
    assert sum(full[0] == "accepted" for full, _ in verdicts) > len(texts) // 2


def test_verdicts_are_remembered_within_bounds(cold_caches, monkeypatch):
    monkeypatch.setattr(hl7_module, "_CACHE_LIMIT", 5)
    rng = random.Random(3)
    base = shipped()
    for t in base + [mutate(rng, rng.choice(base)) for _ in range(60)]:
        assert layout_verdict(t) == hl7apy_verdict(t)
        assert max(map(len, (hl7_module._SEGMENT_VERDICTS, hl7_module._MESSAGE_LAYOUTS,
                             hl7_module._MESSAGE_REFUSALS))) <= 5


def test_a_value_hl7apy_reads_as_text_does_not_change_the_verdict(cold_caches):
    """Dates, numbers and set ids it cannot read are kept as ST in tolerant mode: accepted."""
    text = split_messages((DATA / "oru_r01.hl7").read_bytes())[0].text
    for old, new in (("20260302090000", "2026-13-99T25"), ("|7.1|", "|seven|"), ("OBX|1|", "OBX|one|"),
                     ("20260302101500", "20260302101500+9999")):
        assert layout_verdict(text.replace(old, new, 1)) == hl7apy_verdict(text.replace(old, new, 1))
        assert layout_verdict(text.replace(old, new, 1))[0] == "accepted"


class PythonHl7Reader:
    """The reader hl7_clinical used before: python-hl7's parse, then its containers."""

    def __init__(self, text: str):
        self.msg = python_hl7.parse(text)
        encoding = str(self.msg.segment("MSH")[2])
        self._app_map = {"P": encoding[4]} if len(encoding) > 4 else None

    def get(self, seg, field, rep=1, comp=1, sub=1):
        try:
            x = seg[field]
        except IndexError:
            return None
        for idx in (rep, comp, sub):
            if isinstance(x, str):
                if idx != 1:
                    return None
                continue
            if len(x) < idx:
                return None
            x = x[idx - 1]
        value = self.msg.unescape(str(x), self._app_map) if isinstance(x, str) else None
        return value if value not in (None, "", '""') else None

    def reps(self, seg, field):
        try:
            x = seg[field]
        except IndexError:
            return 0
        return 1 if isinstance(x, str) else len(x)


def test_reader_reads_what_python_hl7_reads():
    logging.getLogger("hl7").setLevel(logging.CRITICAL)  # it logs each escape it cannot decode
    rng = random.Random(4)
    base = shipped()
    texts = base + [mutate(rng, rng.choice(base)) for _ in range(150)]
    lookups = 0
    for text in texts:
        try:
            old = PythonHl7Reader(text)
        except Exception:
            continue
        new = hl7_clinical.Reader(text)
        assert [str(s[0]) for s in old.msg] == [s[0] for s in new.msg]
        for a, b in zip(old.msg, new.msg, strict=True):
            for field in range(24):
                assert old.reps(a, field) == new.reps(b, field)
                for rep in (1, 2, 3):
                    for comp in (1, 2, 4, 9):
                        for sub in (1, 2):
                            lookups += 1
                            assert old.get(a, field, rep, comp, sub) == new.get(b, field, rep, comp, sub), (
                                text, field, rep, comp, sub)
    assert lookups > 100_000


THREADS = r"""
import sys, threading
from datetime import datetime
from connectors import fhir_clinical, hl7_clinical
from connectors.clinical_records import Source
from connectors.hl7 import check_header, split_messages

texts = [m.text for m in split_messages(open(sys.argv[1], "rb").read()) if m.text.startswith("MSH")] * 8
patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "王", "given": ["晓明"]}]}
src = Source(b"k" * 32, "CTY-S1", "HL7v2", "HIS", datetime(2026, 1, 1), "0" * 64, "run")
errors, start = [], threading.Barrier(8)

def work(k):
    start.wait()
    for t in texts[k::8]:
        try:
            if k % 2:  # a name in characters first (pypinyin's lazy_pinyin), else one in pinyin
                fhir_clinical.records(patient, src)  # (its syllable table, from tone_convert)
            h = check_header(t)
            hl7_clinical.records(t, src, h.control_id, h.trigger_event)
            fhir_clinical.records(patient, src)
        except Exception as exc:
            errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(errors), errors[:1])
"""


def test_mapping_from_many_threads_of_a_fresh_worker():
    """Workers map in threads: the first names to need pinyin must not race on its import (they
    did: ImportError / _DeadlockError in pypinyin, and the messages went to quarantine)."""
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", THREADS, str(DATA / "mixed_batch.hl7")], cwd=root,
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith("0 "), out

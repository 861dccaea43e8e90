"""HL7 v2 messages: split files and streams into messages, parse them with hl7apy, build ACKs.

Files may separate segments with ``\\r``, ``\\n`` or ``\\r\\n``; a message starts at each MSH
segment (batch FHS/BHS/BTS/FTS envelopes are dropped). Messages are normalised to ``\\r`` and
parsed with hl7apy in tolerant mode, with the encoding characters read from MSH-1/MSH-2.

hl7apy refuses two things real feeds send: a fifth encoding character (the v2.7 truncation
character, ``^~\\&#``, also required by v2.5.1 lab guides) and versions it has no structures for
(2.7.1, 2.9) or only thin ones (its 2.1 library lacks AL1). v2 only ever adds fields at the end
of a segment, so such messages are handed to hl7apy with four encoding characters and the
nearest structure version; the message itself, as sent, is what gets stored.

hl7apy builds an object per field, component and subcomponent (3-5 ms a message on one core), so
``validate`` asks it once per *layout* rather than once per message. In tolerant mode hl7apy's
verdict depends only on the segment names, the version, the encoding characters and where the
separators are: a value its datatype cannot read (a bad date or number) is kept as ST, never
refused. So each segment is reduced to its layout (every non-blank value replaced by ``x``;
separators, empty and blank values kept; MSH-1, MSH-2, MSH-9 and MSH-12 kept as sent), hl7apy
parses each segment layout it has not seen yet (``parse_segment``) and each new combination of
MSH and segment names (``parse_message``), and its verdict, error text included, is remembered.
``tests/test_hl7_validation.py`` checks the verdicts against hl7apy's full parse of each message,
on the shipped files and on hundreds of mutated ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

# Declared MSH-12 version -> the hl7apy structure version it is parsed with.
STRUCTURE_VERSION = {
    "2.1": "2.3", "2.2": "2.3", "2.3": "2.3", "2.3.1": "2.3.1", "2.4": "2.4", "2.5": "2.5", "2.5.1": "2.5.1",
    "2.6": "2.6", "2.7": "2.7", "2.7.1": "2.7", "2.8": "2.8", "2.8.1": "2.8.1", "2.8.2": "2.8.2",
    "2.9": "2.8.2", "2.9.1": "2.8.2",
}
SUPPORTED_VERSIONS = tuple(STRUCTURE_VERSION)
_SEGMENT_END_B = re.compile(rb"\r\n|\n|\r")
_ENVELOPE = ("FHS", "BHS", "BTS", "FTS")
_SEGMENT = re.compile(r"[A-Z][A-Z0-9]{2}(?:[|^~\\&#]|$)")


class HL7Error(ValueError):
    """A message that cannot be accepted; ``ack_code`` is AR (unreadable) or AE (invalid)."""

    def __init__(self, reason: str, ack_code: str = "AE", control_id: str | None = None):
        super().__init__(reason)
        self.ack_code, self.control_id = ack_code, control_id


@dataclass
class Message:
    offset: int  # byte offset of the MSH in the source
    text: str  # segments joined by \r


@dataclass
class Header:
    control_id: str | None
    message_type: str | None
    trigger_event: str | None
    structure: str | None
    version: str | None
    sending_application: str | None
    sending_facility: str | None
    receiving_application: str | None
    receiving_facility: str | None
    message_datetime: str | None
    segments: list[str]


def split_messages(data: bytes, encoding: str = "utf-8") -> list[Message]:
    """Messages in a file or buffer, each with the byte offset where its MSH starts."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = b"   " + data[3:]
    out: list[Message] = []
    current: list[str] = []
    start = 0
    pos = 0
    junk = False
    for m in _SEGMENT_END_B.finditer(data + b"\n"):
        raw, line_start, pos = data[pos:m.start()], pos, m.end()
        line = raw.decode(encoding, errors="replace").strip(" ")
        if not line.strip() or line.startswith(_ENVELOPE):
            continue
        is_segment = bool(_SEGMENT.match(line))
        if line.startswith("MSH") or (is_segment and junk) or (not is_segment and not junk):
            if current:
                out.append(Message(start, "\r".join(current) + "\r"))
            current, start, junk = [line], line_start, not line.startswith("MSH")
        else:  # a segment of the current message, or more text that is not HL7
            current.append(line)
    if current:
        out.append(Message(start, "\r".join(current) + "\r"))
    return out


def read_header(text: str) -> Header:
    """MSH fields by position, using the message's own field and component separators."""
    segments = [s for s in text.split("\r") if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise HL7Error("not an HL7 v2 message: it does not start with an MSH segment", "AR")
    msh = segments[0]
    fs, comp = msh[3], msh[4]
    f = msh.split(fs)
    # f[0] = "MSH", f[1] = encoding chars, so MSH-n is f[n-1]

    def field(n: int) -> str | None:
        v = f[n - 1] if len(f) >= n else ""
        return v or None

    mtype = (field(9) or "").split(comp)
    trigger = mtype[1] if len(mtype) > 1 and mtype[1] else None
    if trigger is None:  # v2.1 names the event only in EVN-1
        evn = next((s.split(fs) for s in segments if s.startswith("EVN" + fs)), [])
        trigger = (evn[1].split(comp)[0] or None) if len(evn) > 1 else None
    return Header(
        control_id=field(10), message_type=mtype[0] or None, trigger_event=trigger,
        structure=mtype[2] if len(mtype) > 2 and mtype[2] else None,
        version=(field(12) or "").split(comp)[0] or None,
        sending_application=field(3), sending_facility=field(4), receiving_application=field(5),
        receiving_facility=field(6), message_datetime=field(7), segments=[s[:3] for s in segments],
    )


def check_header(text: str) -> Header:
    """The structural check an MLLP ACK needs (MSH with its encoding characters, a control id,
    a known version, a message type): string splitting only, about a hundredth of a full
    parse. The full parse runs at ingest."""
    header = read_header(text)
    encoding = text[4:].split(text[3], 1)[0]
    if not 2 <= len(encoding) <= 5 or text[3] in encoding:
        raise HL7Error(f"MSH-2 (encoding chars) {encoding!r} must be 2 to 5 separators", "AE",
                       header.control_id)
    if not header.control_id:
        raise HL7Error("MSH-10 (message control id) is empty", "AR")
    if header.version not in SUPPORTED_VERSIONS:
        raise HL7Error(f"HL7 version {header.version!r} is not supported (2.1 to 2.9)", "AR",
                       header.control_id)
    if not header.message_type:
        raise HL7Error("MSH-9 (message type) is empty", "AE", header.control_id)
    return header


def validate(text: str) -> Header:
    """The header of a message hl7apy accepts; HL7Error says why a message cannot be accepted.
    Gives the verdict of ``parse`` without building hl7apy's tree (see the module docstring)."""
    header = check_header(text)
    reason = _verdict(for_hl7apy(text, header.version))
    if reason is not None:
        raise HL7Error(f"hl7apy cannot parse it: {reason}", "AE", header.control_id)
    return header


def parse(text: str):
    """Header plus the hl7apy message; HL7Error says why a message cannot be accepted. The
    message tree is built on first use: ``h, _ = parse(text)`` costs what ``validate`` costs."""
    header = validate(text)
    return header, LazyMessage(for_hl7apy(text, header.version))


class LazyMessage:
    """hl7apy's message for a text ``validate`` accepted, parsed when first used."""

    __slots__ = ("_text", "_message")

    def __init__(self, text: str):
        self._text, self._message = text, None

    @property
    def message(self):
        if self._message is None:
            self._message = _hl7apy_parse(self._text)
        return self._message

    def __getattr__(self, name: str):
        return getattr(self.message, name)

    def __repr__(self) -> str:
        return repr(self.message)


# hl7apy's exceptions for text it refuses; anything else is a bug and propagates
def _refusals() -> tuple[type[Exception], ...]:
    from hl7apy.exceptions import HL7apyException

    return HL7apyException, ValueError, KeyError, IndexError


def _hl7apy_parse(text: str):
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    return parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)


# Verdicts already given, bounded so that memory stays flat on any feed (cleared when full):
# (MSH-12, MSH-1, MSH-2, segment layout) -> None or hl7apy's error; (MSH-1, MSH-2, MSH-9, MSH-12,
# the set of segment names) -> True once hl7apy has read a message with them; a message layout
# hl7apy refuses -> its error.
_SEGMENT_VERDICTS: dict[tuple, str | None] = {}
_MESSAGE_LAYOUTS: dict[tuple, bool] = {}
_MESSAGE_REFUSALS: dict[str, str] = {}
_CACHE_LIMIT = 50_000
_VALUES: dict[str, re.Pattern] = {}
_MSH_KEPT = (0, 1, 8, 11)  # MSH, MSH-2, MSH-9, MSH-12 in MSH.split(MSH-1)


def _values(separators: str) -> re.Pattern:
    """Matches each non-blank value (from its first non-blank character) between separators."""
    pattern = _VALUES.get(separators)
    if pattern is None:
        cls = re.escape(separators)
        pattern = _VALUES[separators] = re.compile(f"[^{cls}\\s][^{cls}]*")
    return pattern


def _verdict(text: str) -> str | None:
    """hl7apy's tolerant verdict on ``text`` (as ``for_hl7apy`` gives it): None if it parses,
    else its error text, asking hl7apy only about layouts it has not judged yet.

    ``parse_message`` (``find_groups=False``) reads MSH-1/2/9/12 and makes the message, parses
    each segment on its own, in order, then adds them to the message, which looks only at their
    names. So: once per MSH and set of segment names, hl7apy parses a skeleton (the MSH and each
    name once); then each segment layout gets its own verdict, the first refusal wins. When the
    skeleton is refused, the whole message layout goes to hl7apy, so the error is the one its
    full parse gives."""
    refusals = _refusals()
    # as parse_message and parse_segments read it: message left-stripped, empty segments
    # skipped, each segment stripped (a blank one is kept, as " ", and refused as hl7apy does)
    segments = [s.strip() for s in text.lstrip().split("\r") if s]
    msh = segments[0]
    fs = msh[3]
    fields = msh.split(fs)
    encoding = fields[1]
    values = _values(fs + encoding[:2] + encoding[3:4])
    fields = [f if i in _MSH_KEPT else values.sub("x", f) for i, f in enumerate(fields)]
    shaped = [fs.join(fields)] + [s[:4] + values.sub("x", s[4:]) if s else " " for s in segments[1:]]
    version = fields[11] if len(fields) > 11 else ""
    names = dict.fromkeys(s[:3] or " " for s in segments[1:])
    message = (fs, encoding, fields[8] if len(fields) > 8 else None, version, min(len(fields), 12),
               frozenset(names))
    if message not in _MESSAGE_LAYOUTS:
        try:
            _hl7apy_parse("\r".join([shaped[0], *names]) + "\r")
        except refusals:
            whole = "\r".join(shaped) + "\r"
            if whole not in _MESSAGE_REFUSALS:
                try:
                    _hl7apy_parse(whole)
                    return None
                except refusals as exc:
                    _remember(_MESSAGE_REFUSALS, whole, str(exc))
            return _MESSAGE_REFUSALS[whole]
        _remember(_MESSAGE_LAYOUTS, message, True)
    segment_args = None
    for s in shaped:
        key = (version, fs, encoding, s)
        if key in _SEGMENT_VERDICTS:
            reason = _SEGMENT_VERDICTS[key]
        else:
            if segment_args is None:
                from hl7apy.consts import VALIDATION_LEVEL
                from hl7apy.parser import get_message_info, parse_segment

                chars, _, hl7apy_version = get_message_info(shaped[0])
                segment_args = (parse_segment, hl7apy_version, chars, VALIDATION_LEVEL.TOLERANT)
            parse_segment, *args = segment_args
            try:
                parse_segment(s.strip(), *args)
                reason = None
            except refusals as exc:
                reason = str(exc)
            _remember(_SEGMENT_VERDICTS, key, reason)
        if reason is not None:
            return reason
    return None


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def for_hl7apy(text: str, version: str) -> str:
    """The message as hl7apy takes it: MSH-2 without a truncation character, MSH-12 naming the
    structure version to parse with. Only the MSH segment changes; callers keep ``text``."""
    msh, sep, rest = text.partition("\r")
    fs = msh[3]
    f = msh.split(fs)
    if len(f[1]) == 5:
        f[1] = f[1][:4]
    if len(f) > 11 and STRUCTURE_VERSION[version] != version:
        comp = f[1][:1] or "^"
        f[11] = comp.join([STRUCTURE_VERSION[version], *f[11].split(comp)[1:]])
    return fs.join(f) + sep + rest


_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?")


def hl7_timestamp(value: str | None) -> datetime | None:
    """DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) to a UTC datetime; None if absent or bad."""
    if not value:
        return None
    return _timestamp(value)


@lru_cache(maxsize=4096)  # a message repeats its times (MSH-7, EVN, PV1, OBR, OBX ...)
def _timestamp(value: str) -> datetime | None:
    m = _DTM.fullmatch(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    if tz:
        from datetime import timedelta, timezone

        sign = 1 if tz[0] == "+" else -1
        dt = dt.replace(tzinfo=timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5]))))
        return dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def ack(text: str | None, code: str, error: str | None = None, control_id: str | None = None) -> str:
    """An ACK for ``text``: MSA-1 ``code`` (AA/AE/AR), MSA-2 the message's control id."""
    try:
        h = read_header(text or "")
    except HL7Error:
        h = None
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    cid = control_id or (h.control_id if h else "") or ""
    version = h.version if h and h.version in SUPPORTED_VERSIONS else "2.5"
    trigger = (h.trigger_event if h else None) or ""
    msh = "|".join(["MSH", "^~\\&", "OMICSLAKE", "OMICSLAKE", (h.sending_application if h else None) or "",
                    (h.sending_facility if h else None) or "", now, "", f"ACK^{trigger}^ACK",
                    f"ACK{now}{cid}"[:199], "P", version])
    msa = "|".join(["MSA", code, cid] + ([_escape(error)[:80]] if error else []))
    segs = [msh, msa]
    if error and code != "AA":
        condition = "207" if code == "AR" else "100"
        segs.append("|".join(["ERR", "", "", condition, "E", "", "", _escape(error)[:250]]))
    return "\r".join(segs) + "\r"


def _escape(text: str) -> str:
    """HL7 escape sequences for the default delimiters."""
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("&", "\\T\\").replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))

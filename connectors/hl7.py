"""HL7 v2 messages: split files and streams into messages, parse them with hl7apy, build ACKs.

Files may separate segments with ``\\r``, ``\\n`` or ``\\r\\n``; a message starts at each MSH
segment (batch FHS/BHS/BTS/FTS envelopes are dropped). Messages are normalised to ``\\r`` and
parsed with hl7apy in tolerant mode, with the encoding characters read from MSH-1/MSH-2.

hl7apy refuses two things real feeds send: a fifth encoding character (the v2.7 truncation
character, ``^~\\&#``, also required by v2.5.1 lab guides) and versions it has no structures for
(2.7.1, 2.9) or only thin ones (its 2.1 library lacks AL1). v2 only ever adds fields at the end
of a segment, so such messages are handed to hl7apy with four encoding characters and the
nearest structure version; the message itself, as sent, is what gets stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

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


def parse(text: str):
    """Header plus the hl7apy message; HL7Error says why a message cannot be accepted."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    header = check_header(text)
    try:
        msg = parse_message(for_hl7apy(text, header.version), validation_level=VALIDATION_LEVEL.TOLERANT,
                            find_groups=False)
    except (HL7apyException, ValueError, KeyError, IndexError) as exc:
        raise HL7Error(f"hl7apy cannot parse it: {exc}", "AE", header.control_id) from exc
    return header, msg


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


def hl7_timestamp(value: str | None) -> datetime | None:
    """DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) to a UTC datetime; None if absent or bad."""
    if not value:
        return None
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?", value.strip())
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

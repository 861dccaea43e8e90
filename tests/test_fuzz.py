"""Fuzzing as tests: every parser is fed mutated real inputs, and one mutated batch per feed
goes through its real ingest job on the engine.

A crash is any exception other than the parser's documented rejection: ``ValueError`` from VCF
record parsing (``parse_lines`` returns rejects and never raises), ``HL7Error`` from HL7
parsing, ``ValueError`` from FHIR validation (``iter_resources`` reports bad JSON and never
raises) and ``DicomError`` from DICOM reading and mapping. Mutations are truncation, bit flips,
byte overwrites, inserted tokens (invalid UTF-8, NUL, delimiters, huge fields), deletions and
delimiter swaps; DICOM also gets bad VRs and lengths, FHIR odd JSON values. Hypothesis runs
derandomized with bounded examples, so CI is repeatable and the file stays well under 2 min.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs import HL7_DIR, ct_bytes, fhir_observation, fhir_patient, hl7_message, ndjson
from pydicom.data import get_testdata_file
from pyspark.sql import functions as F

from connectors.dicom import DicomError, Source
from connectors.dicom_deid import DeidConfig
from connectors.fhir import iter_resources, validate
from connectors.hl7 import HL7Error, parse, split_messages
from connectors.vcf import parse_record, read_header
from connectors.vcf_arrow import parse_lines
from jobs import ingest_dicom, ingest_fhir, ingest_hl7, ingest_vcf
from omicslake.ingest import Piece
from omicslake.quarantine import Rejected
from schemas import get_table

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOKENS = (b"\x00", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\t", b"\n", b"\r", b"\r\n", b";", b",",
          b":", b"|", b"^", b"=", b".", b"-1", b"9" * 40, b"9" * 5000, b"A" * 70_000)
FHIR_DIR = Path(__file__).parent / "data" / "fhir"

# --- mutations, shared by the properties and the seeded job-level batches ----------------------


def apply_ops(data: bytes, ops) -> bytes:
    """Apply mutation ops in order; positions wrap around the current length."""
    b = bytearray(data)
    for kind, *args in ops:
        if kind == "swap":
            b = bytearray(bytes(b).replace(args[0], args[1]))
            continue
        if kind == "field":  # replace the k-th field between separators
            fields = bytes(b).split(args[0])
            fields[args[1] % len(fields)] = args[2]
            b = bytearray(args[0].join(fields))
            continue
        at = args[0] % (len(b) + 1)
        if kind == "cut":
            del b[at:]
        elif kind == "insert":
            b[at:at] = args[1]
        elif kind == "delete":
            del b[at:at + args[1]]
        elif at < len(b):
            b[at] = b[at] ^ (1 << args[1]) if kind == "flip" else args[1]
    return bytes(b)


FIELD_VALUES = (b"", b".", b"-1", b"0", b"2147483648", b"9223372036854775808", b"9" * 20, b"9" * 5000,
                b"1e400", b"nan", b"A" * 70_000, b"\xff\xfe")


def op_strategy(swaps: tuple[tuple[bytes, bytes], ...],
                seps: tuple[bytes, ...] = (b"\t",)) -> st.SearchStrategy:
    at = st.integers(0, 1 << 20)
    return st.one_of(
        st.tuples(st.just("field"), st.sampled_from(seps), st.integers(0, 12), st.sampled_from(FIELD_VALUES)),
        st.tuples(st.just("cut"), at),
        st.tuples(st.just("flip"), at, st.integers(0, 7)),
        st.tuples(st.just("set"), at, st.integers(0, 255)),
        st.tuples(st.just("insert"), at, st.sampled_from(TOKENS)),
        st.tuples(st.just("delete"), at, st.integers(1, 64)),
        st.sampled_from(swaps).map(lambda p: ("swap", *p)),
    )


def random_ops(rnd: random.Random, swaps: tuple[tuple[bytes, bytes], ...], n: int = 3) -> list[tuple]:
    """The same op vocabulary as ``op_strategy``, drawn from a seeded Random (job-level batches)."""
    out = []
    for _ in range(n):
        at = rnd.randrange(1 << 20)
        out.append(rnd.choice([
            ("field", b"\t", rnd.randrange(12), rnd.choice(FIELD_VALUES)),
            ("cut", at), ("flip", at, rnd.randrange(8)), ("set", at, rnd.randrange(256)),
            ("insert", at, rnd.choice(TOKENS)), ("delete", at, rnd.randint(1, 64)),
            ("swap", *rnd.choice(swaps)),
        ]))
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- VCF --------------------------------------------------------------------------------------

VCF_HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=248956422>
##contig=<ID=chrM,length=16569>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">
##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">
##INFO=<ID=END,Number=1,Type=Integer,Description="End">
##FILTER=<ID=q10,Description="Quality below 10">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
"""
VCF_LINES = (
    "chr1\t100\trs1\tA\tG\t50\tPASS\tDP=20;AF=0.5;DB\tGT:DP:GQ:AD\t0/1:10:30:5,5\t1|1:12:40:0,12",
    "chr1\t200\t.\tAC\tA,ACC\t.\tq10\tDP=5;AF=0.1,0.2\tGT:DP\t1/2:5\t./.:.",
    "chrM\t300\t.\tN\t<NON_REF>\t.\t.\tEND=310\tGT:DP:GQ\t0/0:30:99\t0/0:25:90",
    "1\t400\trs4\tT\tC\t12.5\tPASS\t.\tGT\t0|1\t1/1",
)
VCF_SWAPS = ((b"\t", b" "), (b";", b","), (b":", b"|"), (b"/", b"|"), (b"=", b":"), (b",", b";"))


@pytest.fixture(scope="module")
def vcf_header(tmp_path_factory):
    path = tmp_path_factory.mktemp("vcf") / "header.vcf"
    path.write_text(VCF_HEADER + "\n".join(VCF_LINES) + "\n")
    return read_header(str(path))


def _vcf_data_lines(body: bytes) -> list[str]:
    """Data lines as the plain-text reader sees them: decoded leniently, blank and # lines skipped."""
    return [raw.decode("utf-8", errors="replace").rstrip("\r") for raw in body.split(b"\n")
            if raw.strip() and not raw.startswith(b"#")]


VCF_COLUMN = st.tuples(st.just("field"), st.just(b"\t"), st.integers(0, 10), st.sampled_from(FIELD_VALUES))
VCF_MUTATED_LINE = st.tuples(
    st.sampled_from(VCF_LINES),
    st.lists(VCF_COLUMN, max_size=1),
    st.lists(op_strategy(VCF_SWAPS, (b"\t", b";", b":", b",")), max_size=3),
).map(lambda t: apply_ops(t[0].encode(), t[1] + t[2]))


@settings(FUZZ, max_examples=400)
@given(mutated=st.lists(VCF_MUTATED_LINE, min_size=1, max_size=6))
def test_vcf_parsers_never_crash_and_account_for_every_line(vcf_header, mutated):
    body = b"\n".join(mutated)
    lines = _vcf_data_lines(body)
    gtype = get_table("bronze.vcf_variants").arrow_schema().field("genotypes").type
    cols, kept, rejected = parse_lines(lines, list(range(1, len(lines) + 1)), vcf_header, gtype)
    assert len(kept) + len(rejected) == len(lines)
    assert not set(kept) & {r.line - 1 for r in rejected}
    assert all(len(a) == len(kept) for a in cols.values())
    assert all(r.reason for r in rejected)
    for line in lines:
        with contextlib.suppress(ValueError):  # the documented rejection; anything else fails here
            parse_record(line, vcf_header)


# --- HL7 --------------------------------------------------------------------------------------

HL7_INPUTS = (HL7_DIR / "oru_r01.hl7", HL7_DIR / "mixed_batch.hl7")
HL7_SWAPS = ((b"|", b"^"), (b"\r", b"\n"), (b"\r", b""), (b"^", b"~"), (b"|", b"\t"), (b"MSH|", b"MSH^"),
             (b"\r", b"\r\n"))


@FUZZ
@given(source=st.sampled_from(HL7_INPUTS),
       ops=st.lists(op_strategy(HL7_SWAPS, (b"|", b"^", b"\r")), min_size=1, max_size=4))
def test_hl7_split_and_parse_never_crash(source, ops):
    data = apply_ops(source.read_bytes(), ops)
    messages = split_messages(data)
    assert [m.offset for m in messages] == sorted({m.offset for m in messages})
    assert all(0 <= m.offset < max(len(data), 1) and m.text.endswith("\r") for m in messages)
    parsed = 0
    for m in messages:
        try:
            parse(m.text)
            parsed += 1
        except HL7Error as exc:
            assert str(exc) and exc.ack_code in ("AE", "AR")
    found = list(ingest_hl7.message_rows(data))
    good = [r for r in found if isinstance(r, dict)]
    bad = [r for r in found if not isinstance(r, dict)]
    assert len(good) + len(bad) == len(messages) and len(good) <= parsed
    assert all(r.reason and r.location.startswith("offset ") for r in bad)


# --- FHIR -------------------------------------------------------------------------------------

FHIR_SWAPS = ((b",", b";"), (b"\n", b""), (b":", b"="), (b'"', b"'"), (b"{", b"["), (b"}", b"\n"))
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30), st.floats(),
    st.text(max_size=30), st.just("x" * 20_000), st.just("0001-01-01T00:00:00+14:00"),
    st.just({"resourceType": {}}), st.just([[[[]]]]), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _fhir_resources() -> list[dict]:
    bundle = json.loads((FHIR_DIR / "bundle.json").read_text())
    return [e["resource"] for e in bundle["entry"]] + [fhir_patient("p-fuzz"), fhir_observation("o-fuzz")]


def _replace_somewhere(data, obj, depth: int = 0):
    """``obj`` with one value, anywhere in it, replaced by an odd one."""
    if isinstance(obj, dict) and obj and depth < 6:
        key = data.draw(st.sampled_from(sorted(obj)))
        here = data.draw(st.booleans())
        return {**obj, key: data.draw(ODD_VALUES) if here else _replace_somewhere(data, obj[key], depth + 1)}
    if isinstance(obj, list) and obj and depth < 6:
        i = data.draw(st.integers(0, len(obj) - 1))
        return [*obj[:i], _replace_somewhere(data, obj[i], depth + 1), *obj[i + 1:]]
    return data.draw(ODD_VALUES)


def _check_fhir_file(path: Path, data: bytes) -> None:
    found = list(iter_resources(path.name, data))
    for f in found:
        assert (f.resource is None) == (f.error is not None) and f.location
        if f.resource is not None:
            try:
                rtype, rid, _, _ = validate(f.resource)
                assert isinstance(rtype, str) and isinstance(rid, str)
            except ValueError as exc:
                assert str(exc)
    path.write_bytes(data)
    rows = list(ingest_fhir.resource_rows(Piece(str(path), "fuzz")))
    assert len(rows) == len(found)
    assert all(isinstance(r, dict) or (isinstance(r, Rejected) and r.reason) for r in rows)


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_fhir_reader_and_validation_never_crash(tmp_path_factory, data):
    resources = _fhir_resources()
    n = data.draw(st.integers(1, 3))
    chosen = [data.draw(st.sampled_from(resources)) for _ in range(n)]
    mutated = [_replace_somewhere(data, r) if data.draw(st.booleans()) else r for r in chosen]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in mutated]}
    text = ndjson(mutated) if data.draw(st.booleans()) else json.dumps(bundle).encode()
    raw = apply_ops(text, data.draw(st.lists(op_strategy(FHIR_SWAPS, (b",", b":", b"\n")), max_size=3)))
    name = data.draw(st.sampled_from(["batch.ndjson", "bundle.json"]))
    _check_fhir_file(tmp_path_factory.getbasetemp() / name, raw)


# --- DICOM ------------------------------------------------------------------------------------

DICOM_FILES = ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm",
               "JPEG2000.dcm", "examples_ybr_color.dcm", "badVR.dcm", "reportsi.dcm")
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
BAD_VRS = (b"XX", b"\x00\x00", b"UN", b"SQ", b"OB", b"US", b"FD", b"IS", b"DS", b"UI", b"PN", b"AT")
BAD_LENGTHS = (0, 1, 3, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE)


def dicom_layout(data: bytes) -> list[tuple[int | None, int, int, str]]:
    """(VR offset, length offset, length size, byte order) of each top-level element, from pydicom."""
    ds = pydicom.dcmread(io.BytesIO(data), defer_size=256)
    out = []
    for dataset, implicit, little in ((ds.file_meta, False, True),
                                      (ds, ds.original_encoding[0], ds.original_encoding[1])):
        for tag in list(dataset.keys()):
            raw = dataset.get_item(tag)
            tell = getattr(raw, "value_tell", None)
            if tell is None:
                continue
            order = "little" if little else "big"
            if implicit:
                out.append((None, tell - 4, 4, order))
            elif str(raw.VR) in LONG_VRS:
                out.append((tell - 8, tell - 4, 4, order))
            else:
                out.append((tell - 4, tell - 2, 2, order))
    return out


def _dicom_source(name: str) -> tuple[bytes, list]:
    data = Path(get_testdata_file(name)).read_bytes()
    return data, dicom_layout(data)


DICOM_SOURCES = {name: _dicom_source(name) for name in DICOM_FILES}


def mutate_dicom(data: bytes, layout: list, ops) -> bytes:
    """Structure-aware ops (a bad VR or length on element k) first, then byte-level ones."""
    b = bytearray(data)
    for kind, k, value in (op for op in ops if op[0] in ("vr", "len")):
        vr_at, len_at, size, order = layout[k % len(layout)]
        if kind == "vr" and vr_at is not None:
            b[vr_at:vr_at + 2] = value
        elif kind == "len":
            b[len_at:len_at + size] = (value % (1 << (8 * size))).to_bytes(size, order)
    return apply_ops(bytes(b), [op for op in ops if op[0] not in ("vr", "len")])


DICOM_OPS = st.one_of(
    st.tuples(st.just("vr"), st.integers(0, 500), st.sampled_from(BAD_VRS)),
    st.tuples(st.just("len"), st.integers(0, 500), st.sampled_from(BAD_LENGTHS) | st.integers(0, 1 << 32)),
    st.tuples(st.just("flip"), st.integers(0, 4000), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20)),
    st.tuples(st.just("insert"), st.integers(128, 4000), st.sampled_from((b"1A", b"\x00" * 3, b"9" * 300))),
)
DEID = DeidConfig(b"fuzz-key-" + b"0" * 32)


def _map(uri: str, data: bytes):
    return ingest_dicom.map_instance(Source(uri, data), DEID, DEID.key, "FUZZ", "run-fuzz", "/tmp/curated",
                                     "/tmp/curated", datetime.now(UTC))


@settings(FUZZ, max_examples=600)
@given(name=st.sampled_from(DICOM_FILES), ops=st.lists(DICOM_OPS, min_size=1, max_size=4))
def test_dicom_reader_and_deidentification_never_crash(name, ops):
    data, layout = DICOM_SOURCES[name]
    mutated = mutate_dicom(data, layout, ops)
    try:
        m = _map(name, mutated)
    except DicomError as exc:
        assert str(exc)
        return
    assert m.bronze.num_rows == m.silver.num_rows == 1
    assert m.bronze.column("source_checksum")[0].as_py() == _sha(mutated)
    copy = pydicom.dcmread(io.BytesIO(m.copy))
    person = m.silver.column("person_id")[0].as_py()
    assert copy.PatientID == person and copy.PatientIdentityRemoved == "YES"
    assert not [e.tag for e in copy if e.tag.is_private]


def test_every_pydicom_test_file_maps_or_is_rejected_with_a_reason():
    """Real-world oddities pydicom ships (bad VRs, big endian, deflate, private sequences, no
    meta): each is mapped or rejected with DicomError; none crashes, and each file that pydicom
    reads and decodes whole, with its keys, pixel data and a patient, is mapped."""
    folder = Path(get_testdata_file("CT_small.dcm")).parent
    mapped = 0
    for path in sorted(folder.glob("*.dcm")):
        data = path.read_bytes()
        try:
            _map(path.name, data)
            mapped += 1
        except DicomError as exc:
            assert not _pydicom_reads_whole(data), f"{path.name}: {exc}"
    assert mapped >= 40


def _pydicom_reads_whole(data: bytes) -> bool:
    """pydicom's own view: default dcmread, every element decodes, keys and PatientID present,
    and native pixel data as long as pydicom expects."""
    from pydicom.pixels.utils import get_expected_length

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        for _ in ds.iterall():
            pass
        keys = all(ds.get(k) for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                                       "PatientID"))
        native = "PixelData" in ds and not ds.file_meta.TransferSyntaxUID.is_encapsulated
        return keys and (not native or len(ds.PixelData) >= get_expected_length(ds, "bytes"))
    except Exception:
        return False


# --- one mutated batch per feed through its real job ------------------------------------------


def _batch_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """The batch in a folder of its own (the lake lives in tmp_path/home; it is no input)."""
    batch = tmp_path / "batch"
    batch.mkdir()
    for name, data in files.items():
        (batch / name).write_bytes(data)
    assert len({_sha(d) for d in files.values()}) == len(files), "every input must be distinct"
    return batch


def test_dicom_job_lands_every_good_instance_in_a_mutated_batch(fresh_lake, tmp_path):
    spark, s = fresh_lake
    rnd = random.Random(7)
    good = {f"good{i}.dcm": ct_bytes(f"PAT-G{i}") for i in range(3)}
    bad = {}
    for i in range(8):
        data = ct_bytes(f"PAT-M{i}")
        layout = dicom_layout(data)
        op = rnd.choice([("vr", rnd.randrange(len(layout)), rnd.choice(BAD_VRS)),
                         ("len", rnd.randrange(len(layout)), rnd.choice(BAD_LENGTHS)),
                         ("flip", rnd.randrange(132, 2000), rnd.randrange(8)),
                         ("insert", rnd.randrange(132, 2000), b"1A"), ("cut", rnd.randrange(len(data)))])
        bad[f"mutated{i}.dcm"] = mutate_dicom(data, layout, [op])
    batch = _batch_folder(tmp_path, {**good, **bad})
    r = ingest_dicom.run(spark, s, [str(batch)], "CTY-S1")
    assert r.rows_read == r.rows_accepted + r.rows_quarantined == len(good) + len(bad)
    landed = {x.source_checksum for x in spark.table("bronze.dicom_instances").collect()}
    quarantined = {x.source_checksum for x in spark.table("quarantine.dicom").collect()}
    assert {_sha(d) for d in good.values()} <= landed
    assert {_sha(d) for d in bad.values()} <= landed | quarantined
    assert len(landed) == r.rows_accepted and len(quarantined) == r.rows_quarantined >= 1


def test_hl7_job_lands_every_good_message_in_a_mutated_batch(fresh_lake, tmp_path):
    spark, s = fresh_lake
    rnd = random.Random(11)
    files = {"good.hl7": hl7_message("FZ-GOOD-1") + hl7_message("FZ-GOOD-2")}
    for i in range(5):
        source = rnd.choice(HL7_INPUTS).read_bytes()
        files[f"mutated{i}.hl7"] = apply_ops(source, random_ops(rnd, HL7_SWAPS, 1))
    batch = _batch_folder(tmp_path, files)
    messages = sum(len(split_messages(d)) for d in files.values())
    r = ingest_hl7.run(spark, s, [str(batch)], "PRV-N")
    assert r.rows_accepted + r.rows_quarantined == r.rows_read == messages
    assert spark.table("bronze.hl7_messages").count() == r.rows_accepted
    assert spark.table("quarantine.hl7").count() == r.rows_quarantined
    ids = {x.message_control_id for x in spark.table("bronze.hl7_messages").collect()}
    assert {"FZ-GOOD-1", "FZ-GOOD-2"} <= ids


def test_fhir_job_lands_every_good_resource_in_a_mutated_batch(fresh_lake, tmp_path):
    spark, s = fresh_lake
    rnd = random.Random(13)
    good = [fhir_patient(f"fz-good-{i}") for i in range(3)] + [fhir_observation("fz-good-obs")]
    files = {"good.ndjson": ndjson(good)}
    for i, source in enumerate(["bundle.json", "export.ndjson"] * 2):
        files[f"mutated{i}{Path(source).suffix}"] = apply_ops((FHIR_DIR / source).read_bytes(),
                                                              random_ops(rnd, FHIR_SWAPS, 1))
    batch = _batch_folder(tmp_path, files)
    found = sum(len(list(iter_resources(name, data))) for name, data in files.items())
    r = ingest_fhir.run(spark, s, [str(batch)], "CTY-S1")
    assert r.rows_read == r.rows_accepted + r.rows_quarantined == found
    assert spark.table("quarantine.fhir").count() == r.rows_quarantined
    ids = {x.resource_id for x in spark.table("bronze.fhir_resources").collect()}
    assert {g["id"] for g in good} <= ids


def test_vcf_job_lands_every_good_line_in_a_mutated_batch(fresh_lake, tmp_path):
    spark, s = fresh_lake
    rnd = random.Random(17)
    body = "\n".join(VCF_LINES).encode()
    files = {"good.vcf": body}
    for i in range(4):
        lines = [apply_ops(x.encode(), random_ops(rnd, VCF_SWAPS, 1)) if k == i or rnd.random() < 0.5
                 else x.encode() for k, x in enumerate(VCF_LINES)]
        files[f"mutated{i}.vcf"] = b"\n".join(lines)
    batch = _batch_folder(tmp_path, {n: VCF_HEADER.encode() + d + b"\n" for n, d in files.items()})
    r = ingest_vcf.run(spark, s, [str(batch / n) for n in files], "PRV-N")
    assert r.rows_read == r.rows_accepted + r.rows_quarantined
    for name, data in files.items():
        checksum = _sha(VCF_HEADER.encode() + data + b"\n")
        mine = F.col("source_checksum") == checksum
        landed = spark.table("bronze.vcf_variants").where(mine).count()
        q = [x.location for x in spark.table("quarantine.vcf").where(mine).collect()]
        if name == "good.vcf":
            assert (landed, q) == (len(VCF_LINES), [])
        elif q != ["file"]:  # a file the reader gives up on is set aside whole, as one row
            assert landed + len(q) == len(_vcf_data_lines(data)), name


def test_mutations_change_their_input():
    """The ops really mutate: every kind changes a valid input (else the properties prove little)."""
    line = VCF_LINES[0].encode()
    for op in [("cut", 5), ("flip", 3, 0), ("set", 3, 0), ("insert", 2, b"\xff"), ("delete", 1, 2),
               ("swap", b"\t", b" ")]:
        assert apply_ops(line, [op]) != line, op
    data, layout = DICOM_SOURCES["CT_small.dcm"]
    assert len(layout) > 50
    assert mutate_dicom(data, layout, [("vr", 10, b"XX")]) != data
    assert mutate_dicom(data, layout, [("len", 10, 0xFFFF)]) != data

import gzip
import shutil

import pytest

from connectors.contigs import guess_build, normalise_contig
from connectors.manifest import check_samples, read_manifest
from connectors.vcf import FieldDef, VcfHeader, iter_records, parse_info, parse_record, read_header
from omicslake.demo_data import make_vcf
from omicslake.errors import InputError


@pytest.fixture(scope="module")
def vcf(tmp_path_factory):
    return make_vcf(tmp_path_factory.mktemp("vcf") / "x.vcf.gz", ["S1", "S2", "S3"], 30, seed=7,
                    bad_line=True)


def test_header_is_typed(vcf):
    h = read_header(str(vcf))
    assert h.samples == ["S1", "S2", "S3"]
    assert h.build == "GRCh38"
    assert h.contigs["chr17"] == 83257441
    assert h.info["AF"] == FieldDef("A", "Float") and h.info["AN"] == FieldDef("1", "Integer")
    assert h.formats["AD"].number == "R"


def test_info_types_follow_header():
    defs = {"AC": FieldDef("A", "Integer"), "AN": FieldDef("1", "Integer"),
            "AF": FieldDef("A", "Float"), "DB": FieldDef("0", "Flag"), "G": FieldDef("1", "String")}
    assert parse_info("AC=1,2;AN=10;AF=0.1,.;DB;G=x", defs) == {
        "AC": [1, 2], "AN": 10, "AF": [0.1, None], "DB": True, "G": "x"}
    gaps: set[str] = set()
    assert parse_info("XX=1,b;AN;YY", defs, gaps) == {"XX": ["1", "b"], "AN": True, "YY": True}
    assert gaps == {"INFO/XX is not declared in the header; read as Type=String, Number=.",
                    "INFO/AN has no value; read as a flag",
                    "INFO/YY is not declared in the header; read as Type=String, Number=.",
                    "INFO/YY has no value; read as a flag"}


def test_records_parse_and_bad_line_is_reported(vcf):
    h = read_header(str(vcf))
    rows = list(iter_records(str(vcf), h))
    good = [r for r in rows if r[3] is None]
    bad = [r for r in rows if r[3] is not None]
    assert len(good) == 30 and len(bad) == 1
    lineno, raw, _, err = bad[0]
    assert "REF 'Z'" in err and raw.startswith("chr22\t")
    with gzip.open(vcf, "rt") as fh:
        assert fh.read().splitlines()[lineno - 1] == raw.rstrip("\n")
    g = good[0][2]["genotypes"][0]
    assert set(g) == {"sample_index", "gt", "phased", "dp", "gq", "ad"} and g["sample_index"] == 0


def test_malformed_records_raise():
    h = VcfHeader("x", ["S1"], {}, {"DP": FieldDef("1", "Integer")},
                  {"GT": FieldDef("1", "String")}, None, 1)
    with pytest.raises(ValueError, match="columns"):
        parse_record("1\t5\t.\tA\tC\t.\t.\t.", h)
    with pytest.raises(ValueError, match="POS"):
        parse_record("1\tx\t.\tA\tC\t.\t.\t.\tGT\t0/1", h)
    with pytest.raises(ValueError, match="out of range"):
        parse_record("1\t5\t.\tA\tC\t.\t.\t.\tGT\t0/2", h)
    rec = parse_record("1\t5\trs1\tA\tC,G\t10\tPASS\tDP=3\tGT\t1|2", h)
    assert rec["contig"] == "chr1" and rec["genotypes"][0]["gt"] == [1, 2]
    assert rec["genotypes"][0]["phased"] is True and rec["id"] == "rs1"


def test_truncated_bgzip_fails_whole_input(vcf, tmp_path):
    data = vcf.read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated or corrupt"):
        h = read_header(str(cut))
        list(iter_records(str(cut), h))


def test_missing_header_fails(tmp_path):
    p = tmp_path / "nohdr.vcf"
    p.write_text("chr1\t5\t.\tA\tC\t.\t.\t.\n")
    with pytest.raises(InputError, match="valid header"):
        read_header(str(p))


def test_contigs_and_build():
    assert [normalise_contig(c) for c in ("1", "chr1", "MT", "chrM", "X")] == [
        "chr1", "chr1", "chrM", "chrM", "chrX"]
    assert guess_build([], {"1": 249250621}) == "GRCh37"
    assert guess_build(["##reference=file:///hs37d5.fa"], {}) == "GRCh37"


def test_manifest_checks(tmp_path):
    m = tmp_path / "m.tsv"
    m.write_text("sample_id\tpatient_id\tspecimen\nS1\tMRN1\tblood\nS2\tMRN2\tsaliva\n")
    rows = read_manifest(m)
    assert [r.sample_id for r in rows] == ["S1", "S2"] and rows[1].specimen == "saliva"
    with pytest.raises(InputError, match="1 sample"):
        check_samples(rows, ["S1", "S9"], "x.vcf", str(m))
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,patient_id\nS1,A\nS1,B\n")
    with pytest.raises(InputError, match="line 3"):
        read_manifest(bad)
    shutil.copy(m, tmp_path / "copy.tsv")


def test_build_from_header_or_given_and_conflict_is_an_error(vcf, tmp_path):
    assert read_header(str(vcf), "GRCh38").build == "GRCh38"
    with pytest.raises(InputError, match="header says GRCh38 but GRCh37 was given"):
        read_header(str(vcf), "GRCh37")
    bare = tmp_path / "nobuild.vcf"
    bare.write_text("##fileformat=VCFv4.1\n##contig=<ID=7,length=1000>\n"
                    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n7\t5\t.\tA\tG\t.\t.\t.\n")
    assert read_header(str(bare)).build is None
    assert read_header(str(bare), "GRCh37").build == "GRCh37"

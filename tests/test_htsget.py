"""GA4GH htsget 1.3 over real HTTP on loopback (`omicslake api` in its own process): tickets for
the VCF, BCF, BAM and CRAM files a county center ingested, their blocks fetched with the token
and concatenated, and the records of the region checked against bcftools/samtools on the
original file. The slicing itself is also checked without a server, on every index kind."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from connectors.hts_index import SliceError, bgzf_compress, bgzf_slice, byte_slice, load_bin_index, split
from connectors.htsget import HtsObject, layout_of
from omicslake.demo_bam import make_bam
from omicslake.demo_data import REGIONS, make_vcf
from omicslake.net import free_port, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None or shutil.which("samtools") is None,
                                reason="bcftools and samtools come from Debian packages (`make install`)")

COUNTY, OTHER, PROVINCE = "CNT-S1A", "CNT-S2A", "PRV-S"
BLOCK_BYTES = 20_000  # small, so a region and a whole file come in several data blocks
SUFFIX = {"VCF": ".vcf.gz", "BCF": ".bcf", "BAM": ".bam", "CRAM": ".cram"}


def sh(*args, env: dict | None = None) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, env=env).stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("hts")
    vcf = make_vcf(d / "cohort.vcf.gz", [f"S{i:02d}" for i in range(20)], 3000, seed=5)  # ~18 BGZF blocks
    bcf = d / "cohort.bcf"
    sh("bcftools", "view", "-Ob", "-o", bcf, vcf)
    sh("bcftools", "index", bcf)
    bam, fasta = make_bam(d)
    cram = d / "NA001.cram"
    sh("samtools", "view", "-C", "-T", fasta, "-o", cram, bam)
    sh("samtools", "index", cram)
    gone = make_vcf(d / "gone.vcf.gz", ["S00", "S01"], 30, seed=6)  # ingested, then deleted
    unindexed = make_vcf(d / "unindexed.vcf.gz", ["S00", "S01"], 30, seed=7)  # its index removed later
    vcf_manifest, bam_manifest = d / "vcf.csv", d / "bam.csv"
    vcf_manifest.write_text("sample_id,patient_id\n" + "".join(f"S{i:02d},MRN-{i}\n" for i in range(20)))
    bam_manifest.write_text("sample_id,patient_id\nNA001,MRN-NA001\n")
    return SimpleNamespace(dir=d, vcf=vcf, bcf=bcf, bam=bam, cram=cram, fasta=fasta, gone=gone,
                           gone_id=sha256(gone), unindexed=unindexed, vcf_manifest=vcf_manifest,
                           bam_manifest=bam_manifest)


@pytest.fixture(scope="module")
def api(files, tmp_path_factory):
    """A lake of its own where the county ingested the files, tokens issued in this process, then
    `omicslake api` in its own process on that lake."""
    from pyspark.sql import SparkSession

    from jobs import ingest_bam, ingest_vcf
    from omicslake.catalog import ensure_tables
    from omicslake.credentials import issue
    from omicslake.session import start_local_server
    from omicslake.settings import load_settings

    home = tmp_path_factory.mktemp("lake") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMICSLAKE_HOME", str(home))
        settings = load_settings()
        _, (_, port) = start_local_server()
        spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        ensure_tables(spark, settings)
        r = ingest_vcf.run(spark, settings, [str(files.vcf), str(files.bcf), str(files.gone),
                                             str(files.unindexed)], COUNTY, str(files.vcf_manifest))
        assert r.status == "succeeded" and r.rows_quarantined == 0, r
        r = ingest_bam.run(spark, settings, [str(files.bam), str(files.cram)], COUNTY,
                           str(files.bam_manifest), reference=str(files.fasta))
        assert r.rows_accepted == 2, r
        tokens = {name: issue(spark, settings, center, role).token for name, (center, role) in {
            "county": (COUNTY, "analyst"), "uploader": (COUNTY, "uploader"), "other": (OTHER, "analyst"),
            "province": (PROVINCE, "analyst")}.items()}
        api_port = free_port()
        log = files.dir / "api.log"
        env = {**os.environ, "OMICSLAKE_HOME": settings.home,
               "OMICSLAKE_HTSGET_BLOCK_BYTES": str(BLOCK_BYTES)}
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "-v", "api", "--port",
                                     str(api_port)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(api_port, timeout=120)
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as client:
                yield SimpleNamespace(client=client, tokens=tokens, spark=spark, settings=settings, log=log,
                                      port=api_port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            spark.stop()


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def ticket(api, kind: str, object_id: str, token: str | None = None, **params) -> httpx.Response:
    return api.client.get(f"/htsget/{kind}/{object_id}", params=params,
                          headers=_auth(token or api.tokens["county"]))


def download(api, body: dict) -> bytes:
    """What a client does with a ticket: fetch each URL with exactly its headers, concatenate."""
    blob = b""
    for u in body["htsget"]["urls"]:
        if u["url"].startswith("data:"):
            blob += base64.b64decode(u["url"].split(",", 1)[1])
            continue
        r = httpx.get(u["url"], headers=u.get("headers", {}), timeout=60)
        assert r.status_code == 200, r.text
        assert len(r.content) == int(r.headers["Content-Length"])
        blob += r.content
    return blob


def fetch(api, kind: str, path: Path, fmt: str, **params) -> tuple[dict, bytes]:
    r = ticket(api, kind, sha256(path), format=fmt, **params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.ga4gh.htsget.v1.3.0+json")
    body = r.json()
    assert body["htsget"]["format"] == fmt
    urls = body["htsget"]["urls"]
    assert urls[0]["class"] == "header" and all(u["class"] == "body" for u in urls[1:])
    assert urls[-1]["url"].startswith("data:")  # the EOF marker, inline
    assert all(u["headers"] == _auth(api.tokens["county"]) for u in urls[:-1])
    return body, download(api, body)


def variant_lines(path: Path, region: str | None = None) -> list[str]:
    if region and not Path(f"{path}.tbi").exists() and not Path(f"{path}.csi").exists():
        sh("bcftools", "index", path)
    return sh("bcftools", "view", "-H", *(["-r", region] if region else []), path).splitlines()


def read_lines(path: Path, fasta: Path, region: str | None = None) -> list[str]:
    if region and not any(Path(f"{path}{s}").exists() for s in (".bai", ".crai", ".csi")):
        sh("samtools", "index", path)
    return sh("samtools", "view", "-T", fasta, path, *([region] if region else [])).splitlines()


def test_variant_regions_read_like_bcftools_on_the_original(api, files, tmp_path):
    rng = random.Random(5)
    regions = [("chr1", 1_200_000, 1_450_000), ("chr17", 43_044_294, 43_060_000),
               ("chr22", 20_990_000, 21_000_000), ("chr17", 43_200_000, 43_300_000)]  # the last holds nothing
    for contig, (lo, hi) in REGIONS.items():
        a = rng.randrange(lo, hi)
        regions.append((contig, a, a + rng.randrange(1, 200_000)))
    whole = len(files.vcf.read_bytes())
    for fmt, path in (("VCF", files.vcf), ("BCF", files.bcf)):
        for i, (contig, start, end) in enumerate(regions):
            body, blob = fetch(api, "variants", path, fmt, referenceName=contig, start=start, end=end)
            out = tmp_path / f"{fmt}{i}{SUFFIX[fmt]}"
            out.write_bytes(blob)
            region = f"{contig}:{start + 1}-{end}"  # htsget is 0-based half-open, bcftools 1-based closed
            want = variant_lines(path, region)
            assert variant_lines(out, region) == want, (fmt, region)
            got = variant_lines(out)  # whole BGZF blocks may overhang the region, never more than that
            assert set(want) <= set(got) and len(blob) < whole / 2, (fmt, region, len(got), len(blob))
            assert len(got) < len(variant_lines(path)) / 2
            if i == 3:  # nothing there: the header and the EOF marker only
                assert not want and not got and len(body["htsget"]["urls"]) == 2
    # a contig as the lake names it finds the file's own name; many blocks come as many URLs
    body, blob = fetch(api, "variants", files.vcf, "VCF", referenceName="22")
    assert len(body["htsget"]["urls"]) > 3
    out = tmp_path / "chr22.vcf.gz"
    out.write_bytes(blob)
    assert variant_lines(out, "chr22") == variant_lines(files.vcf, "chr22")


def test_read_regions_read_like_samtools_on_the_original(api, files, tmp_path):
    regions = [("chr1", 100, 2_000), ("chr1", 12_000, 12_001), ("chr2", 5_000, 9_000),
               ("chr2", 19_000, 20_000), ("chr2", None, None), ("*", None, None)]
    for fmt, path in (("BAM", files.bam), ("CRAM", files.cram)):
        for i, (contig, start, end) in enumerate(regions):
            params = {"referenceName": contig} | ({"start": start, "end": end} if start is not None else {})
            body, blob = fetch(api, "reads", path, fmt, **params)
            out = tmp_path / f"{fmt}{i}{SUFFIX[fmt]}"
            out.write_bytes(blob)
            region = contig if start is None else f"{contig}:{start + 1}-{end}"
            want = read_lines(path, files.fasta, region)
            assert want and read_lines(out, files.fasta, region) == want, (fmt, region)
            got = read_lines(out, files.fasta)
            assert set(want) <= set(got) and len(got) < len(read_lines(path, files.fasta)), (fmt, region)


def test_whole_file_and_header_only_tickets(api, files, tmp_path):
    for fmt, path, kind in (("VCF", files.vcf, "variants"), ("BCF", files.bcf, "variants"),
                            ("BAM", files.bam, "reads")):
        body, blob = fetch(api, kind, path, fmt)
        assert len(body["htsget"]["urls"]) > 3  # split at BGZF blocks under OMICSLAKE_HTSGET_BLOCK_BYTES
        assert gzip.decompress(blob) == gzip.decompress(path.read_bytes()), fmt  # every byte, in order
        body, head = fetch(api, kind, path, fmt, **{"class": "header"})
        assert len(body["htsget"]["urls"]) == 2  # the header and the EOF marker
        out = tmp_path / f"header{SUFFIX[fmt]}"
        out.write_bytes(head)
        if kind == "variants":
            assert sh("bcftools", "view", "-h", "--no-version", out) == sh("bcftools", "view", "-h",
                                                                            "--no-version", path)
            assert variant_lines(out) == []
        else:
            header = ("samtools", "view", "--no-PG", "-H")
            assert sh(*header, out) == sh(*header, path)
            assert read_lines(out, files.fasta) == []
    _, blob = fetch(api, "reads", files.cram, "CRAM")
    assert blob == files.cram.read_bytes()  # CRAM is cut at containers: the same bytes
    _, head = fetch(api, "reads", files.cram, "CRAM", **{"class": "header"})
    out = tmp_path / "header.cram"
    out.write_bytes(head)
    assert sh("samtools", "view", "--no-PG", "-H", out) == sh("samtools", "view", "--no-PG", "-H", files.cram)
    assert read_lines(out, files.fasta) == []
    # without format= the object comes as it is stored, and the ticket says which
    assert ticket(api, "variants", sha256(files.bcf)).json()["htsget"]["format"] == "BCF"


def test_htslib_follows_a_ticket_by_itself(api, files, tmp_path):
    """bcftools and samtools read an htsget URL directly (htslib's own htsget client)."""
    token_file = tmp_path / "token"
    token_file.write_text(api.tokens["county"])
    env = {**os.environ, "HTS_AUTH_LOCATION": str(token_file),
           "HTS_ALLOW_UNENCRYPTED_AUTHORIZATION_HEADER": "I understand the risks"}
    base = f"http://127.0.0.1:{api.port}/htsget"
    url = f"{base}/variants/{sha256(files.vcf)}?referenceName=chr22&start=20100000&end=20300000"
    out = tmp_path / "via_htslib.vcf.gz"
    sh("bcftools", "view", "-Oz", "-o", out, url, env=env)
    region = "chr22:20100001-20300000"
    assert variant_lines(out, region) == variant_lines(files.vcf, region)
    url = f"{base}/reads/{sha256(files.bam)}?referenceName=chr2&start=3000&end=6000"
    out = tmp_path / "via_htslib.bam"
    sh("samtools", "view", "-b", "-o", out, url, env=env)
    region = "chr2:3001-6000"
    assert read_lines(out, files.fasta, region) == read_lines(files.bam, files.fasta, region)


def test_errors_are_htsget_errors_and_every_request_is_audited(api, files):
    vcf_id, bam_id = sha256(files.vcf), sha256(files.bam)

    def error(r: httpx.Response, status: int, kind: str) -> str:
        assert r.status_code == status, r.text
        assert r.json()["htsget"]["error"] == kind, r.text
        return r.json()["htsget"]["message"]

    error(api.client.get(f"/htsget/variants/{vcf_id}"), 401, "InvalidAuthentication")
    error(api.client.get(f"/htsget/variants/{vcf_id}", headers=_auth("olk_nope_nope")), 401,
          "InvalidAuthentication")
    error(ticket(api, "variants", vcf_id, api.tokens["other"]), 403, "PermissionDenied")
    error(ticket(api, "reads", bam_id, api.tokens["other"]), 403, "PermissionDenied")
    uploader = ticket(api, "variants", vcf_id, api.tokens["uploader"])
    assert "uploaders" in error(uploader, 403, "PermissionDenied")
    assert ticket(api, "variants", vcf_id, api.tokens["province"]).status_code == 200  # the county's province
    error(ticket(api, "variants", "0" * 64), 404, "NotFound")
    error(ticket(api, "variants", "not-a-checksum"), 404, "NotFound")
    error(ticket(api, "reads", vcf_id), 404, "NotFound")  # a VCF is no reads object
    error(ticket(api, "variants", vcf_id, referenceName="chr1", start=500, end=100), 400, "InvalidRange")
    error(ticket(api, "variants", vcf_id, start=100), 400, "InvalidInput")
    error(ticket(api, "variants", vcf_id, referenceName="chr1", start="x"), 400, "InvalidInput")
    error(ticket(api, "variants", vcf_id, referenceName="*"), 400, "InvalidInput")
    error(ticket(api, "variants", vcf_id, **{"class": "header", "referenceName": "chr1"}), 400,
          "InvalidInput")
    error(ticket(api, "variants", vcf_id, **{"class": "body"}), 400, "InvalidInput")
    assert "stored as VCF" in error(ticket(api, "variants", vcf_id, format="BCF"), 400, "UnsupportedFormat")
    error(ticket(api, "reads", bam_id, format="CRAM"), 400, "UnsupportedFormat")
    error(ticket(api, "reads", bam_id, format="SAM"), 400, "UnsupportedFormat")
    assert "chrX" in error(ticket(api, "variants", vcf_id, referenceName="chrX"), 404, "NotFound")
    # the file must still be there, with its index
    files.gone.unlink()
    assert "no longer" in error(ticket(api, "variants", files.gone_id), 404, "NotFound")
    Path(f"{files.unindexed}.tbi").unlink()
    assert "no index" in error(ticket(api, "variants", sha256(files.unindexed)), 404, "NotFound")

    # the data URLs: the same token, scope and audit; offsets must land on BGZF blocks
    body = ticket(api, "variants", vcf_id, referenceName="chr1", start=1_000_000, end=1_100_000).json()
    data = body["htsget"]["urls"][1]
    assert httpx.get(data["url"]).status_code == 401
    assert httpx.get(data["url"], headers=_auth(api.tokens["other"])).status_code == 403
    assert httpx.get(data["url"], headers=data["headers"]).status_code == 200
    bad = data["url"].split("?")[0] + "?class=body&start=" + str((7 << 16) | 3) + "&end=" + str(9 << 16)
    error(httpx.get(bad, headers=data["headers"]), 400, "InvalidRange")
    info = api.client.get("/htsget/reads/service-info").json()
    assert info["type"]["artifact"] == "htsget" and info["htsget"]["formats"] == ["BAM", "CRAM"]

    time.sleep(2.5)  # the audit queue writes every second
    audit = api.spark.read.format("delta").load(f"{api.settings.lake_root}/ops/audit_log")
    rows = [r.asDict() for r in audit.where("action = 'htsget'").collect()]
    tickets = [r for r in rows if json.loads(r["details_json"])["request"] == "ticket"]
    blocks = [r for r in rows if json.loads(r["details_json"])["request"] == "data"]
    ok = {(r["principal"], r["center_id"], r["client"]) for r in tickets if r["outcome"] == "ok"}
    assert (f"{COUNTY}:analyst", COUNTY, "127.0.0.1") in ok
    assert (f"{PROVINCE}:analyst", COUNTY, "127.0.0.1") in ok
    assert any(r["outcome"] == "ok" and json.loads(r["details_json"])["bytes"] > 0 for r in blocks)
    refused = [json.loads(r["details_json"])["error"] for r in rows if r["outcome"] == "refused"]
    assert set(refused) >= {"PermissionDenied", "NotFound", "InvalidRange", "InvalidInput",
                            "UnsupportedFormat"}
    assert audit.where("action = 'login' AND outcome = 'refused'").count() >= 3
    text = api.log.read_text(errors="replace")
    assert not any(t in text for t in api.tokens.values())


# --- slicing without a server, on every index kind ---------------------------------------------


def test_slices_match_bcftools_and_samtools_for_every_index_kind(files, tmp_path):
    vcf_csi = tmp_path / "csi.vcf.gz"
    shutil.copy(files.vcf, vcf_csi)
    sh("bcftools", "index", "-c", vcf_csi)
    bam_csi = tmp_path / "csi.bam"
    shutil.copy(files.bam, bam_csi)
    sh("samtools", "index", "-c", bam_csi)
    cases = [("VCF", files.vcf, f"{files.vcf}.tbi"), ("VCF", vcf_csi, f"{vcf_csi}.csi"),
             ("BCF", files.bcf, f"{files.bcf}.csi"), ("BAM", files.bam, f"{files.bam}.bai"),
             ("BAM", bam_csi, f"{bam_csi}.csi"), ("CRAM", files.cram, f"{files.cram}.crai")]
    rng = random.Random(9)
    for fmt, path, index in cases:
        layout = layout_of(HtsObject("x", "reads", fmt, str(path), COUNTY, index))
        starts = layout.block_starts()
        cut = byte_slice if fmt == "CRAM" else bgzf_slice
        for trial in range(6):
            if fmt in ("VCF", "BCF"):
                contig = rng.choice(list(REGIONS))
                start = REGIONS[contig][0] + rng.randrange(0, 900_000)
                end = start + rng.randrange(1, 150_000)
            else:
                contig, start = rng.choice(["chr1", "chr2"]), rng.randrange(0, 19_000)
                end = start + rng.randrange(1, 6_000)
            body = split(layout.body(contig, start, end), starts, 8_000, layout.shift)
            blob = b"".join(b"".join(cut(str(path), u, v).stream())
                            for u, v in [(0, layout.header_end), *body]) + layout.eof
            out = tmp_path / f"{trial}{SUFFIX[fmt]}"
            out.write_bytes(blob)
            for suffix in (".tbi", ".csi", ".bai", ".crai"):
                Path(f"{out}{suffix}").unlink(missing_ok=True)
            region = f"{contig}:{start + 1}-{end}"
            if fmt in ("VCF", "BCF"):
                assert variant_lines(out, region) == variant_lines(path, region), (fmt, index, region)
            else:
                want = read_lines(path, files.fasta, region)
                assert read_lines(out, files.fasta, region) == want, (fmt, region)


def test_bgzf_slices_are_exact_and_refuse_offsets_off_blocks(files, tmp_path):
    raw = gzip.decompress(files.vcf.read_bytes())
    starts = load_bin_index(f"{files.vcf}.tbi").block_starts
    assert len(starts) > 5
    rng = random.Random(1)
    # any two virtual offsets on known blocks give exactly the bytes between them
    pos, blocks = 0, []
    with open(files.vcf, "rb") as fh:
        from connectors.hts_index import read_block

        off = 0
        while off < files.vcf.stat().st_size:
            data, nxt = read_block(fh, off)
            blocks.append((off, pos, len(data)))
            pos, off = pos + len(data), nxt
    for _ in range(30):
        (c1, p1, n1), (c2, p2, n2) = sorted(rng.sample(blocks, 2))
        u1, u2 = rng.randrange(0, max(n1, 1)), rng.randrange(0, max(n2, 1))
        piece = b"".join(bgzf_slice(str(files.vcf), (c1 << 16) | u1, (c2 << 16) | u2).stream())
        assert gzip.decompress(piece) == raw[p1 + u1:p2 + u2]
    with pytest.raises(SliceError):
        bgzf_slice(str(files.vcf), (blocks[1][0] + 1) << 16, blocks[3][0] << 16)  # not a block start
    with pytest.raises(SliceError):
        bgzf_slice(str(files.vcf), blocks[1][0] << 16 | 65535, blocks[3][0] << 16)  # past its block
    assert gzip.decompress(bgzf_compress(b"x" * 200_000)) == b"x" * 200_000

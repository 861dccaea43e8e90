"""Optional consequence calls from Ensembl VEP or snpEff, when one of them is on PATH.

Each Spark task writes its variants as a sites VCF (the ID column carries ``variant_id``),
pipes it through the tool and reads the first consequence term of the first CSQ (VEP, run
with ``--pick``) or ANN (snpEff, most severe first) entry back. The tool's database is the
site's: ``OMICSLAKE_VEP_ARGS`` (default ``--offline --cache --assembly GRCh38``) and
``OMICSLAKE_SNPEFF_ARGS`` (default ``GRCh38.105``) are appended to the command.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass

import pyarrow as pa

TOOLS = ("vep", "snpEff")
OUT_SCHEMA = pa.schema([("variant_id", pa.string()), ("consequence", pa.string())])


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str

    def command(self) -> list[str]:
        if self.name == "vep":
            extra = os.environ.get("OMICSLAKE_VEP_ARGS", "--offline --cache --assembly GRCh38")
            return [self.path, "--format", "vcf", "--vcf", "--pick", "--no_stats", "--input_file", "STDIN",
                    "--output_file", "STDOUT", *shlex.split(extra)]
        extra = os.environ.get("OMICSLAKE_SNPEFF_ARGS", "GRCh38.105")
        return [self.path, "ann", "-noStats", *shlex.split(extra), "-"]

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()


def _version(name: str, path: str) -> str:
    args = [path, "-version"] if name == "snpEff" else [path, "--help"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout + out.stderr).splitlines()
    hit = [t for t in text if "ensembl-vep" in t] if name == "vep" else text
    return " ".join((hit or [""])[0].split())[:80]


def find_tool() -> Tool | None:
    """VEP or snpEff (in that order of preference), or None when neither is on PATH."""
    for name in TOOLS:
        path = shutil.which(name) or (shutil.which(name.lower()) if name != name.lower() else None)
        if path:
            return Tool(name, path, _version(name, path))
    return None


def _vcf(batch: pa.RecordBatch) -> str:
    rows = batch.to_pydict()
    body = "".join(f"{c}\t{p}\t{v}\t{r}\t{a}\t.\t.\t.\n" for c, p, v, r, a in zip(
        rows["contig"], rows["pos"], rows["variant_id"], rows["ref"], rows["alt"], strict=True))
    return "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + body


def first_consequence(info: str) -> str | None:
    """The first term of the first CSQ= or ANN= entry (``Allele|Consequence|...``)."""
    for item in info.split(";"):
        key, _, value = item.partition("=")
        if key in ("CSQ", "ANN") and value:
            fields = value.split(",")[0].split("|")
            return fields[1].split("&")[0] or None if len(fields) > 1 else None
    return None


def annotate(tool: Tool):
    """mapInArrow body: variants (variant_id, contig, pos, ref, alt) in, consequences out."""
    def run(batches):
        for batch in batches:
            if not batch.num_rows:
                continue
            proc = subprocess.run(tool.command(), input=_vcf(batch), capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{tool.name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
            ids, terms = [], []
            for line in proc.stdout.splitlines():
                cols = line.split("\t")
                if not line.startswith("#") and len(cols) >= 8:
                    ids.append(cols[2])
                    terms.append(first_consequence(cols[7]))
            yield pa.RecordBatch.from_arrays([pa.array(ids, pa.string()), pa.array(terms, pa.string())],
                                             schema=OUT_SCHEMA)
    return run

"""Smoke job for a Spark cluster: omicslake's pure transforms, with the Python work in the executors.

    make wheel   # dist/omicslake-0.1.0-py3-none-any.whl, and the same bytes as .zip
    spark-submit --master spark://HOST:7077 --py-files dist/omicslake-0.1.0-py3-none-any.zip \\
        infra/cluster_smoke.py --data /shared/smoke --out /shared/smoke/result.json

Why it exists: ``--py-files`` is how the project's code reaches the executors, and as a
``.zip``: PySpark puts only ``.zip``/``.egg``/``.jar`` py-files on the executors' ``sys.path``,
not a ``.whl`` (a wheel is a zip, so ``make wheel`` copies it). The executors' Python must also
hold the locked dependencies (pysam, NumPy, SciPy, PyArrow). A cluster where either is missing
fails here in a minute, not half-way through an ingest. It needs no Delta, so it runs without
the delta-spark jars. ``--data`` must be a folder every executor can read (the left-alignment
tasks open the FASTA there). ``tests/test_spark_cluster.py`` runs it on a standalone cluster on
loopback and compares its rows with the embedded engine's.

What runs where: the allele split and genotype recoding are JVM expressions; the left-alignment
(pysam, ``mapInArrow``), the Hardy-Weinberg test (NumPy/SciPy, ``mapInArrow``) and the contig
rule (a Python UDF) run in the executors' Python workers, which report their host, pid, parent
processes and the file the project's code was imported from.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

SAMPLES = ["A", "B", "C", "D"]
CONTIG_NAMES = ["1", "chr1", "CHR2", "X", "chrX", "MT", "M", "chrM", "chrMT", "GL000192.1", "chrUn_x"]
PROCESS = "task_process"


def _proc(pid: int) -> tuple[int, str]:
    """(parent pid, role) of a Linux process, from /proc: which JVM or Python it is."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return 0, "gone"
    ppid = int(stat.rsplit(")", 1)[1].split()[1])
    roles = {"CoarseGrainedExecutorBackend": "executor", "deploy.worker.Worker": "worker",
             "pyspark.daemon": "pyspark-daemon", "SparkSubmit": "spark-submit"}
    role = next((r for key, r in roles.items() if key in cmd), os.path.basename(cmd.split(" ", 1)[0]))
    return ppid, role


def process_info() -> dict[str, Any]:
    """Where this Python code runs: host, pid, four generations of parents, and the origin of
    the project's code (inside the shipped wheel when --py-files delivered it)."""
    import jobs.annotate_variants as shipped

    chain, pid = [], os.getpid()
    for _ in range(4):
        ppid, role = _proc(pid)
        chain.append({"pid": pid, "role": role})
        if ppid <= 1:
            break
        pid = ppid
    return {"host": socket.gethostname(), "pid": os.getpid(), "chain": chain,
            "code": os.path.abspath(shipped.__file__)}


def traced(body):
    """Wrap a ``mapInArrow`` body so each output row carries the process that computed it."""
    def run(batches):
        where = json.dumps(process_info())
        for b in body(batches):
            yield pa.RecordBatch.from_arrays([*b.columns, pa.array([where] * b.num_rows, pa.string())],
                                             names=[*b.schema.names, PROCESS])
    return run


def make_inputs(data: Path) -> None:
    """Write the inputs once (same seed, same bytes): a multi-sample VCF with multiallelic
    records, and a reference FASTA with a homopolymer and a repeat plus indels placed in them."""
    import pysam

    from omicslake.demo_data import make_vcf

    data.mkdir(parents=True, exist_ok=True)
    if not (data / "calls.vcf.gz.tbi").exists():
        make_vcf(data / "calls.vcf.gz", SAMPLES, 90, seed=3)
    if (data / "alleles.json").exists():
        return
    rng = random.Random(9)
    seq = list("".join(rng.choice("ACGT") for _ in range(3000)))
    seq[999:1010], seq[1999:2012] = "A" * 11, "CACACACACACAG"
    seq = "".join(seq)
    (data / "ref.fa").write_text(">chr1\n" + "\n".join(seq[i:i + 60] for i in range(0, 3000, 60)) + "\n")
    pysam.faidx(str(data / "ref.fa"))

    def at(pos: int, n: int) -> str:
        return seq[pos - 1:pos - 1 + n]

    alleles = [(p, at(p, 2), at(p, 1)) for p in range(1000, 1010)]  # one A deleted along the run
    alleles += [(p, at(p, 1), at(p, 1) + "A") for p in range(1000, 1010)]  # one A inserted
    alleles += [(p, at(p, 3), at(p, 1)) for p in range(2000, 2010)]  # a CA unit deleted, or not
    alleles += [(p, at(p, 1), "T" if at(p, 1) != "T" else "G") for p in range(100, 3000, 97)]  # SNVs
    alleles += [(500, "GATTACA", "G")]  # a REF that does not match: reported, not moved
    (data / "alleles.json").write_text(json.dumps(alleles))


def bronze_frame(spark: SparkSession, vcf: Path) -> DataFrame:
    """bronze.vcf_variants rows of one VCF, parsed on the driver (the file is small)."""
    from connectors.vcf import iter_records, read_header
    from schemas import get_table

    header = read_header(str(vcf))
    rows = []
    for lineno, _, rec, err in iter_records(str(vcf), header):
        if not err:
            rec.update(line=lineno, build=header.build, center_id="C", source_uri=str(vcf),
                       source_checksum="x", ingest_run_id="r", ingested_at=None)
            rows.append(rec)
    return spark.createDataFrame(rows, get_table("bronze.vcf_variants").spark_schema())


def sample_frame(spark: SparkSession) -> DataFrame:
    from schemas import get_table

    row = {c.name: None for c in get_table("bronze.vcf_headers").columns}
    row.update(samples=SAMPLES, source_checksum="x")
    return spark.createDataFrame([row], get_table("bronze.vcf_headers").spark_schema())


def rows(df: DataFrame) -> list[str]:
    """A DataFrame's rows as sorted JSON text: comparable across engines and processes."""
    return sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=str) for r in df.collect())


def split_processes(got: list) -> tuple[list[str], list[dict]]:
    """Separate collected rows from the processes that computed them."""
    out, procs = [], {}
    for r in got:
        d = r.asDict(recursive=True)
        where = d.pop(PROCESS)
        procs[where] = json.loads(where)
        out.append(json.dumps(d, sort_keys=True, default=str))
    return sorted(out), list(procs.values())


def hwe_stage(spark: SparkSession) -> tuple[list[str], list[dict]]:
    """jobs.annotate_variants' HWE body (NumPy/SciPy) over 240 count triples in 8 partitions."""
    from pyspark.sql import types as T

    from jobs.annotate_variants import _with_hwe

    counts = spark.createDataFrame([(i, (i * 7) % 50, (i * 3) % 20, i % 5) for i in range(240)],
                                   "site long, n_hom_ref long, n_het long, n_hom_alt long")
    schema = T.StructType([*counts.schema.fields, T.StructField("hwe_p", T.DoubleType()),
                           T.StructField(PROCESS, T.StringType())])
    return split_processes(counts.repartition(8).mapInArrow(traced(_with_hwe), schema).collect())


def contig_stage(spark: SparkSession) -> tuple[list[str], list[dict]]:
    """connectors.contigs.normalise_contig as a Python UDF, next to its Spark-column twin."""
    from connectors.contigs import normalise_contig, normalised_contig

    @F.udf("struct<contig:string, process:string>")
    def python_rule(name):
        return normalise_contig(name), json.dumps(process_info())

    names = spark.createDataFrame([(n,) for n in CONTIG_NAMES], "n string").repartition(4)
    got = names.select("n", normalised_contig(F.col("n")).alias("spark_rule"),
                       python_rule("n").alias("r"))
    return split_processes(got.select("n", "spark_rule", "r.contig", F.col("r.process").alias(PROCESS))
                           .collect())


def transforms(spark: SparkSession, data: Path) -> tuple[dict[str, list[str]], list[dict]]:
    """Run the engine-matrix transforms on ``spark``; return their rows by name and the
    processes that ran their Python parts."""
    from connectors.normalise import normalise_alleles
    from jobs.clean_variants import name_samples, sample_names, sites, split_alleles, split_genotypes

    split = split_alleles(bronze_frame(spark, data / "calls.vcf.gz"))
    results = {"sites": rows(sites(split)),
               "calls": rows(name_samples(split_genotypes(split), sample_names(sample_frame(spark))))}
    alleles = spark.createDataFrame([("GRCh38", "chr1", p, r, a) for p, r, a in json.loads(
        (data / "alleles.json").read_text())], "build string, contig string, pos long, ref string, "
        "alt_allele string").repartition(4)
    normalised, problems = normalise_alleles(alleles, str(data / "ref.fa"))
    results["left_aligned"] = rows(normalised)
    results["left_align_problems"] = rows(problems)
    results["hwe"], hwe_procs = hwe_stage(spark)
    results["contigs"], contig_procs = contig_stage(spark)
    return results, hwe_procs + contig_procs


def main(argv: list[str] | None = None) -> None:
    """spark-submit entry: the ``classic`` profile's session (no Delta), results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="input folder every executor can read")
    parser.add_argument("--out", required=True, help="where the driver writes its JSON report")
    args = parser.parse_args(argv)
    from omicslake.session import classic_session
    from omicslake.settings import load_settings

    settings = load_settings()
    if settings.engine != "classic":
        raise SystemExit("run with OMICSLAKE_ENGINE=classic (and OMICSLAKE_SPARK_MASTER=spark://...)")
    spark = classic_session(settings, require_delta=False)
    t0 = time.perf_counter()
    make_inputs(Path(args.data))
    results, processes = transforms(spark, Path(args.data))
    report = {"master": spark.sparkContext.master, "driver": process_info(), "results": results,
              "processes": processes, "seconds": round(time.perf_counter() - t0, 2)}
    spark.stop()
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"cluster smoke: {sum(map(len, results.values()))} rows from {len(processes)} Python "
          f"processes on {len({p['host'] for p in processes})} host(s) in {report['seconds']} s")


if __name__ == "__main__":
    main()

"""Every table of the lake. Add a table here and the catalog, CLI and quality pick it up."""

from __future__ import annotations

from pyspark.sql import types as T

from schemas.contract import (
    BOOL,
    DATE,
    DOUBLE,
    INT,
    LONG,
    STRING,
    TIMESTAMP,
    Table,
    bronze,
    col,
    quarantine,
)

CONTIG = T.StructType([T.StructField("name", T.StringType()), T.StructField("length", T.LongType())])

GENOTYPE = T.StructType(
    [
        T.StructField("sample_index", T.IntegerType()),  # into bronze.vcf_headers.samples
        T.StructField("gt", T.ArrayType(T.IntegerType())),
        T.StructField("phased", T.BooleanType()),
        T.StructField("dp", T.IntegerType()),
        T.StructField("gq", T.IntegerType()),
        T.StructField("ad", T.ArrayType(T.IntegerType())),
    ]
)

# --- ops -------------------------------------------------------------------------------------

CENTERS = Table(
    "ops",
    "centers",
    (
        col("center_id", STRING, True),
        col("name", STRING, True),
        col("tier", STRING, True, "national | provincial | city | county"),
        col("parent_id", STRING),
        col("region", STRING),
    ),
    "The network of centers: a tree from the national center down to counties.",
    keys=("center_id",),
)

INGEST_RUNS = Table(
    "ops",
    "ingest_runs",
    (
        col("run_id", STRING, True),
        col("job", STRING, True),
        col("center_id", STRING),
        col("params_json", STRING),
        col("input_uris", T.ArrayType(STRING)),
        col("input_checksums", T.ArrayType(STRING)),
        col("rows_read", LONG, True),
        col("rows_accepted", LONG, True),
        col("rows_quarantined", LONG, True),
        col("rows_written", LONG, True),
        col("status", STRING, True, "succeeded | skipped | failed"),
        col("error", STRING),
        col("engine", STRING),
        col("started_at", TIMESTAMP, True),
        col("finished_at", TIMESTAMP, True),
        col("duration_s", DOUBLE, True),
    ),
    "One row per job run, with what it read, accepted, quarantined and wrote.",
    keys=("run_id",),
)

QUALITY_RESULTS = Table(
    "ops",
    "quality_results",
    (
        col("check_run_id", STRING, True),
        col("table_name", STRING, True),
        col("expectation", STRING, True),
        col("column_name", STRING),
        col("critical", BOOL, True),
        col("success", BOOL, True),
        col("element_count", LONG),
        col("unexpected_count", LONG),
        col("details_json", STRING),
        col("checked_at", TIMESTAMP, True),
    ),
    "Great Expectations results, one row per expectation per check.",
    keys=("check_run_id", "table_name", "expectation", "column_name"),
)

AUDIT_LOG = Table(
    "ops",
    "audit_log",
    (
        col("event_id", STRING, True),
        col("at", TIMESTAMP, True),
        col("principal", STRING, True),
        col("center_id", STRING),
        col("action", STRING, True, "read | write | query | upload | ..."),
        col("target", STRING, True),
        col("details_json", STRING),
    ),
    "Every access and change: who, when, what.",
    keys=("event_id",),
)

# --- genomics --------------------------------------------------------------------------------

VCF_HEADERS = bronze(
    "vcf_headers",
    (
        col("samples", T.ArrayType(STRING), True, "sample names in column order"),
        col("contigs", T.ArrayType(CONTIG), doc="contig names as in the file, with lengths"),
        col("build", STRING, doc="GRCh37 | GRCh38, from the header or the manifest"),
        col("file_format", STRING, doc="bgzf | plain | bcf"),
        col("info_json", STRING, doc="INFO definitions: Number and Type per key"),
        col("format_json", STRING, doc="FORMAT definitions: Number and Type per key"),
        col("meta", T.ArrayType(STRING), doc="the ## header lines"),
    ),
    "One row per ingested VCF/BCF: its header, so genotypes can name their samples by index.",
    keys=("source_checksum",),
)

VCF_VARIANTS = bronze(
    "vcf_variants",
    (
        col("contig", STRING, True, "normalised contig name (chr-prefixed)"),
        col("pos", LONG, True, "1-based"),
        col("end", LONG),
        col("id", STRING),
        col("ref", STRING, True),
        col("alt", T.ArrayType(STRING)),
        col("qual", DOUBLE),
        col("filter", T.ArrayType(STRING)),
        col("info_json", STRING, doc="INFO typed from the header, as JSON"),
        col("genotypes", T.ArrayType(GENOTYPE)),
        col("line", LONG, doc="1-based line in the source file when known"),
        col("build", STRING),
    ),
    "One row per VCF record as parsed, with its genotypes. Not partitioned: each ingest task "
    "writes the records of one genomic region, so per-file min/max of contig and pos prune "
    "region queries, and the write needs no shuffle (memory stays flat as files grow). No "
    "uniqueness key: a source may repeat a site, and bronze keeps what was sent.",
)

SAMPLES = Table(
    "silver",
    "samples",
    (
        col("sample_id", STRING, True, "sample name as in the VCF"),
        col("person_id", STRING, True, "keyed pseudonym"),
        col("center_id", STRING, True),
        col("specimen", STRING),
        col("assay", STRING),
        col("build", STRING),
        col("source_checksum", STRING),
        col("updated_at", TIMESTAMP),
    ),
    "Samples from the centers' manifests, linked to a person.",
    keys=("center_id", "sample_id"),
)

VARIANTS = Table(
    "silver",
    "variants",
    (
        col("variant_id", STRING, True, "build:contig:pos:ref:alt"),
        col("build", STRING, True),
        col("contig", STRING, True),
        col("pos", LONG, True),
        col("ref", STRING, True),
        col("alt", STRING, True),
        col("rsid", STRING),
        col("first_seen_run_id", STRING),
    ),
    "One row per normalised biallelic site.",
    partition_by=("contig",),
    keys=("variant_id",),
)

GENOTYPES = Table(
    "silver",
    "genotypes",
    (
        col("variant_id", STRING, True),
        col("person_id", STRING, True),
        col("sample_id", STRING, True),
        col("center_id", STRING, True),
        col("contig", STRING, True),
        col("pos", LONG, True),
        col("gt", T.ArrayType(INT)),
        col("phased", BOOL),
        col("alt_count", INT, True),
        col("dp", INT),
        col("gq", INT),
        col("ad", T.ArrayType(INT)),
        col("source_checksum", STRING, True),
        col("ingest_run_id", STRING, True),
        col("person_bucket", STRING, True, "first hex digit of the person_id digest (16 buckets)"),
    ),
    "One row per sample x variant for non-reference calls. Partitioned by contig and person "
    "bucket: a region query reads one contig's folders, a one-person query one bucket in each.",
    partition_by=("contig", "person_bucket"),
    keys=("variant_id", "center_id", "sample_id"),
)

ALIGNMENT_QC = Table(
    "silver",
    "alignment_qc",
    (
        col("sample_id", STRING, True),
        col("person_id", STRING, True),
        col("center_id", STRING, True),
        col("format", STRING, True, "BAM | CRAM"),
        col("alignment_uri", STRING, True, "the reads stay here, in object storage"),
        col("index_uri", STRING),
        col("reference_uri", STRING, doc="FASTA the CRAM decodes against"),
        col("size_bytes", LONG, True),
        col("source_checksum", STRING, True),
        col("total_reads", LONG, True, "as samtools flagstat: QC-passed + QC-failed"),
        col("qc_failed", LONG),
        col("mapped", LONG),
        col("paired", LONG),
        col("properly_paired", LONG),
        col("singletons", LONG),
        col("duplicates", LONG),
        col("secondary", LONG),
        col("supplementary", LONG),
        col("depth_scope", STRING, True, "targets | genome"),
        col("bases_assessed", LONG),
        col("mean_depth", DOUBLE),
        col("median_depth", DOUBLE),
        col("fraction_target_20x", DOUBLE, doc="share of target bases at >= 20x (targets only)"),
        col("ingest_run_id", STRING, True),
        col("computed_at", TIMESTAMP, True),
    ),
    "Per-sample alignment QC from BAM/CRAM, pointing at the file.",
    keys=("center_id", "sample_id", "source_checksum"),
)

# --- clinical ---------------------------------------------------------------------------------

HL7_MESSAGES = bronze(
    "hl7_messages",
    (
        col("message_control_id", STRING, True, "MSH-10"),
        col("message_type", STRING, True, "MSH-9.1, e.g. ADT or ORU"),
        col("trigger_event", STRING, doc="MSH-9.2, e.g. A01 or R01"),
        col("message_structure", STRING, doc="MSH-9.3"),
        col("version", STRING, True, "MSH-12"),
        col("sending_application", STRING),
        col("sending_facility", STRING),
        col("receiving_application", STRING),
        col("receiving_facility", STRING),
        col("message_time", TIMESTAMP, doc="MSH-7 in UTC"),
        col("segments", T.ArrayType(STRING), doc="segment ids in order"),
        col("raw", STRING, True, "the whole message, segments joined by \\r"),
        col("byte_offset", LONG, doc="where the message starts in its source file"),
    ),
    "One row per HL7 v2 message as received (files or MLLP landing), with its MSH fields.",
    keys=("source_checksum", "byte_offset"),
)

FHIR_RESOURCES = bronze(
    "fhir_resources",
    (
        col("resource_type", STRING, True),
        col("resource_id", STRING, True),
        col("last_updated", TIMESTAMP, doc="meta.lastUpdated in UTC; a newer one replaces an older"),
        col("version_id", STRING, doc="meta.versionId"),
        col("raw_json", STRING, True, "the resource as received, contained resources included"),
        col("location", STRING, doc="line N (NDJSON) or entry N (Bundle) in the source"),
    ),
    "One row per FHIR resource (type, id): the newest version received.",
    partition_by=("resource_type",),
    keys=("resource_type", "resource_id"),
)

# --- gold ------------------------------------------------------------------------------------

COHORT_DEFINITIONS = Table(
    "gold",
    "cohort_definitions",
    (
        col("cohort_definition_id", LONG, True),
        col("name", STRING, True),
        col("description", STRING),
        col("criteria_sql", STRING, True),
    ),
    "What each published cohort means.",
    keys=("cohort_definition_id",),
)

COHORT = Table(
    "gold",
    "cohort",
    (
        col("cohort_definition_id", LONG, True),
        col("subject_id", STRING, True, "person_id"),
        col("cohort_start_date", DATE, True),
        col("cohort_end_date", DATE),
    ),
    "OMOP-style cohort membership.",
    partition_by=("cohort_definition_id",),
    keys=("cohort_definition_id", "subject_id"),
)

# --- quarantine ------------------------------------------------------------------------------

QUARANTINE_VCF = quarantine("vcf", "VCF/BCF records and manifests that could not be accepted.")
QUARANTINE_HL7 = quarantine("hl7", "HL7 v2 messages that could not be parsed or are not supported.")
QUARANTINE_FHIR = quarantine("fhir", "FHIR JSON that is invalid, or resources that fail validation.")

ALL_TABLES: tuple[Table, ...] = (
    CENTERS,
    INGEST_RUNS,
    QUALITY_RESULTS,
    AUDIT_LOG,
    VCF_HEADERS,
    VCF_VARIANTS,
    SAMPLES,
    VARIANTS,
    GENOTYPES,
    ALIGNMENT_QC,
    HL7_MESSAGES,
    FHIR_RESOURCES,
    COHORT_DEFINITIONS,
    COHORT,
    QUARANTINE_VCF,
    QUARANTINE_HL7,
    QUARANTINE_FHIR,
)

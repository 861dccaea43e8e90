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

# --- silver clinical: one model from HL7 v2 and FHIR ----------------------------------------

CLINICAL_SOURCE = (
    col("center_id", STRING, True),
    col("source_format", STRING, True, "HL7v2 | FHIR"),
    col("source_system", STRING, True, "HL7: MSH-3@MSH-4; FHIR: meta.source, else FHIR@center"),
    col("source_record", STRING, True, "HL7: control id + segment; FHIR: Type/id"),
    col("event_time", TIMESTAMP, doc="MSH-7 or meta.lastUpdated (UTC): a later event wins on update"),
    col("source_checksum", STRING, True),
    col("ingest_run_id", STRING, True),
    col("updated_at", TIMESTAMP, True),
)


def clinical(name: str, columns: tuple, doc: str, key: str) -> Table:
    """A silver clinical table: keyed on a pseudonymous record id, with its source."""
    return Table("silver", name, (col(key, STRING, True, "keyed pseudonym of the source record id"),
                                  *columns, *CLINICAL_SOURCE), doc, keys=(key,))


ENCOUNTERS = clinical(
    "encounters",
    (
        col("person_id", STRING, True),
        col("class_code", STRING, doc="v3 ActCode: IMP, AMB, EMER, PRENC ... (HL7 PV1-2 mapped)"),
        col("status", STRING, doc="FHIR Encounter.status; HL7 A01/A02 in-progress, A03 finished"),
        col("start_time", TIMESTAMP, doc="PV1-44 / period.start"),
        col("end_time", TIMESTAMP, doc="PV1-45 (or the A03 event time) / period.end"),
        col("location", STRING, doc="PV1-3 point of care / first location display"),
        col("service", STRING, doc="PV1-10 hospital service / serviceType"),
        col("last_event", STRING, doc="HL7 trigger (A01, A02, A03, A04, A08) or FHIR"),
    ),
    "One row per visit, from HL7 ADT PV1 (keyed on PV1-19 visit number) and FHIR Encounter.",
    "encounter_id",
)

CONDITIONS = clinical(
    "conditions",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("code", STRING, True),
        col("code_system", STRING, True, "ICD-10, ICD-10-CM, SNOMED CT or as sent"),
        col("icd10_code", STRING, doc="the code when the system is ICD-10 or ICD-10-CM"),
        col("display", STRING),
        col("onset_time", TIMESTAMP),
        col("clinical_status", STRING, doc="FHIR clinicalStatus; HL7 DG1-6 diagnosis type"),
    ),
    "Diagnoses from HL7 DG1 and FHIR Condition.",
    "condition_id",
)

OBSERVATIONS = clinical(
    "observations",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("order_id", STRING, doc="keyed pseudonym of OBR filler/placer number"),
        col("code", STRING, True),
        col("code_system", STRING, True),
        col("loinc_code", STRING, doc="the code when the system is LOINC"),
        col("display", STRING),
        col("category", STRING),
        col("value_type", STRING, doc="HL7 OBX-2 (NM, ST, CE, SN ...) or FHIR value[x] type"),
        col("value_num", DOUBLE),
        col("value_text", STRING),
        col("value_code", STRING),
        col("unit", STRING, doc="UCUM code when the source unit maps to one, else null"),
        col("source_unit", STRING, doc="the unit as sent"),
        col("reference_low", DOUBLE),
        col("reference_high", DOUBLE),
        col("reference_text", STRING),
        col("abnormal_flag", STRING, doc="HL7 table 0078 (N, L, H, LL, HH, A ...), else from the range"),
        col("abnormal_flag_derived", BOOL, doc="true when the flag was computed from value and range"),
        col("status", STRING, doc="OBX-11 (F, C, P ...) or FHIR status"),
        col("effective_time", TIMESTAMP),
        col("components_json", STRING, doc="FHIR components (e.g. genomics variant observations)"),
    ),
    "Results from HL7 ORU OBX (one row each) and FHIR Observation, with LOINC, UCUM and ranges.",
    "observation_id",
)

MEDICATIONS = clinical(
    "medications",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("kind", STRING, True, "request | statement"),
        col("code", STRING),
        col("code_system", STRING, doc="RxNorm, ATC ... or as sent"),
        col("display", STRING),
        col("status", STRING),
        col("intent", STRING),
        col("dose_value", DOUBLE),
        col("dose_unit", STRING),
        col("route", STRING),
        col("start_time", TIMESTAMP),
        col("end_time", TIMESTAMP),
    ),
    "Medication orders and statements (FHIR MedicationRequest and MedicationStatement).",
    "medication_id",
)

PROCEDURES = clinical(
    "procedures",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("code", STRING),
        col("code_system", STRING),
        col("display", STRING),
        col("status", STRING),
        col("performed_time", TIMESTAMP),
    ),
    "Procedures (FHIR Procedure).",
    "procedure_id",
)

PATIENT_IDENTITIES = clinical(
    "patient_identities",
    (
        col("person_id", STRING, True, "pseudonym of this identity (assigning authority + identifier)"),
        col("assigning_authority", STRING, True, "CX-4 / identifier.system; the center when absent"),
        col("identifier_type", STRING, doc="CX-5 / identifier.type (MR, NI ...); FHIR-ID for the logical id"),
        col("identifier_key", STRING, True, "keyed pseudonym of the identifier value"),
        col("is_primary", BOOL, True, "the identity the record's person_id was derived from"),
        col("merged_into_person_id", STRING, doc="survivor after an ADT A40 merge"),
        col("sex", STRING, doc="M, F, O, U"),
        col("birth_year", INT),
        col("birth_date_key", STRING, doc="keyed pseudonym of the full birth date (for linkage)"),
        col("family_name_key", STRING, doc="keyed pseudonym of the normalised family name"),
        col("given_name_key", STRING, doc="keyed pseudonym of the normalised first given name"),
        col("postal_prefix", STRING, doc="first 3 characters of the postal code"),
    ),
    "Source identities for person linkage: one row per identifier a source used for a person, "
    "with pseudonymised demographics (no direct identifier is stored).",
    "identity_id",
)

# --- imaging ----------------------------------------------------------------------------------

DICOM_INSTANCES = bronze(
    "dicom_instances",
    (
        col("sop_instance_uid", STRING, True),
        col("study_instance_uid", STRING, True),
        col("series_instance_uid", STRING, True),
        col("sop_class_uid", STRING),
        col("modality", STRING),
        col("body_part", STRING),
        col("study_date", STRING, doc="DA as sent (YYYYMMDD)"),
        col("series_date", STRING),
        col("acquisition_date", STRING),
        col("series_number", INT),
        col("instance_number", INT),
        col("rows", INT),
        col("columns", INT),
        col("number_of_frames", INT),
        col("transfer_syntax", STRING),
        col("has_pixel_data", BOOL, True),
        col("header_json", STRING, True, "DICOM JSON (PS3.18 F.2); bulk values as their byte count"),
        col("file_uri", STRING, True, "the file, or archive.zip!/member"),
        col("size_bytes", LONG, True),
    ),
    "One row per DICOM instance received (identified header, restricted layer). source_checksum "
    "is the sha256 of the instance's bytes, so the same instance never lands twice.",
    keys=("source_checksum",),
)

IMAGING_INSTANCES = Table(
    "silver",
    "imaging_instances",
    (
        col("sop_instance_uid", STRING, True, "de-identified (2.25 HMAC) UID"),
        col("series_instance_uid", STRING, True),
        col("study_instance_uid", STRING, True),
        col("person_id", STRING, True),
        col("center_id", STRING, True),
        col("modality", STRING),
        col("body_part", STRING),
        col("sop_class_uid", STRING),
        col("instance_number", INT),
        col("rows", INT),
        col("columns", INT),
        col("number_of_frames", INT),
        col("transfer_syntax", STRING),
        col("study_date", DATE, doc="shifted by the person's offset when dates are shifted"),
        col("date_shift_days", INT, doc="days moved back (0 when dates are kept)"),
        col("burned_in_annotation", BOOL, doc="Burned In Annotation = YES in the header"),
        col("burned_in_risk", BOOL, True, "YES, or a modality that often carries text in pixels"),
        col("deid_uri", STRING, True, "the de-identified copy in the curated zone"),
        col("size_bytes", LONG),
        col("source_checksum", STRING, True),
        col("ingest_run_id", STRING, True),
        col("updated_at", TIMESTAMP, True),
    ),
    "One row per de-identified DICOM instance, pointing at its copy in the curated zone.",
    keys=("sop_instance_uid",),
)

IMAGING_SERIES = Table(
    "silver",
    "imaging_series",
    (
        col("series_instance_uid", STRING, True),
        col("study_instance_uid", STRING, True),
        col("person_id", STRING, True),
        col("center_id", STRING, True),
        col("modality", STRING),
        col("body_part", STRING),
        col("instance_count", LONG, True),
        col("frame_count", LONG),
        col("burned_in_risk", BOOL),
        col("thumbnail_uri", STRING, doc="PNG of the middle instance, windowed"),
        col("updated_at", TIMESTAMP, True),
    ),
    "One row per series, with counts recomputed from silver.imaging_instances.",
    keys=("series_instance_uid",),
)

IMAGING_STUDIES = Table(
    "silver",
    "imaging_studies",
    (
        col("study_instance_uid", STRING, True),
        col("person_id", STRING, True),
        col("center_id", STRING, True),
        col("study_date", DATE),
        col("modalities", STRING, doc="distinct modalities, comma separated"),
        col("series_count", LONG, True),
        col("instance_count", LONG, True),
        col("updated_at", TIMESTAMP, True),
    ),
    "One row per study, with counts recomputed from silver.imaging_instances.",
    keys=("study_instance_uid",),
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
QUARANTINE_DICOM = quarantine("dicom", "Files that are not DICOM, or truncated or corrupt instances.")

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
    ENCOUNTERS,
    CONDITIONS,
    OBSERVATIONS,
    MEDICATIONS,
    PROCEDURES,
    PATIENT_IDENTITIES,
    DICOM_INSTANCES,
    IMAGING_INSTANCES,
    IMAGING_SERIES,
    IMAGING_STUDIES,
    COHORT_DEFINITIONS,
    COHORT,
    QUARANTINE_VCF,
    QUARANTINE_HL7,
    QUARANTINE_FHIR,
    QUARANTINE_DICOM,
)

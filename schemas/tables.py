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
    RowScope,
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
    gate="genomics.silver",
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
        col("per_input_json", STRING, doc="per input: read, quarantined, and records per silver "
            "table or set-aside rule (they add up to read)"),
        col("warnings", T.ArrayType(STRING), doc="input the job read past, e.g. header gaps"),
        col("status", STRING, True, "succeeded | skipped | failed"),
        col("error", STRING),
        col("engine", STRING),
        col("started_at", TIMESTAMP, True),
        col("finished_at", TIMESTAMP, True),
        col("duration_s", DOUBLE, True),
    ),
    "One row per job run, with what it read, accepted, quarantined and wrote.",
    keys=("run_id",),
    gate="genomics.runs",
)

CREDENTIALS = Table(
    "ops",
    "credentials",
    (
        col("token_id", STRING, True, "the public part of a token (olk_<token_id>_<secret>)"),
        col("center_id", STRING, True),
        col("role", STRING, True, "uploader | analyst | admin"),
        col("token_hash", STRING, True, "argon2id hash of the whole token; the token itself is never stored"),
        col("issued_at", TIMESTAMP, True),
        col("expires_at", TIMESTAMP, True),
        col("revoked_at", TIMESTAMP),
        col("issued_by", STRING),
    ),
    "API tokens: a principal is a center and a role. Shown once when issued; kept only as a salted "
    "slow hash; they expire and can be revoked.",
    keys=("token_id",),
    access=RowScope("admin"),
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
        col("client", STRING, doc="where from: the HTTP peer address, or the host that ran the command"),
        col("outcome", STRING, doc="ok | refused | failed"),
    ),
    "Every access and change: who, when, what, from where and the outcome. Append-only.",
    keys=("event_id",),
    append_only=True,
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
        col("filters", T.ArrayType(STRING), doc="FILTER ids the header declares"),
        col("warnings", T.ArrayType(STRING), doc="header gaps read past as htslib does (undeclared "
            "INFO/FORMAT/FILTER keys, INFO keys without a value), once each"),
        col("records_read", LONG, doc="data lines: quarantined + the sum of records_by_destination"),
        col("records_quarantined", LONG),
        col("records_by_destination", T.MapType(STRING, LONG), doc="records per silver table "
            "(silver.variants, silver.structural_variants, silver.reference_blocks) or set-aside rule"),
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
    gate="genomics.silver",
)

SAMPLES = Table(
    "silver",
    "samples",
    (
        col("sample_id", STRING, True, "sample name as in the VCF"),
        col("person_id", STRING, True, "the master person (silver.persons) once linked"),
        col("center_id", STRING, True),
        col("specimen", STRING),
        col("assay", STRING),
        col("build", STRING),
        col("source_checksum", STRING),
        col("updated_at", TIMESTAMP),
        col("source_person_id", STRING, doc="pseudonym of the manifest's (authority, patient id): "
            "the person_id silver.genotypes carries for this sample"),
        col("assigning_authority", STRING, doc="the manifest's assigning authority (the center when absent)"),
    ),
    "Samples from the centers' manifests, linked to a person. Genotypes reach the master person "
    "through this table: silver.genotypes JOIN silver.samples USING (center_id, sample_id).",
    keys=("center_id", "sample_id"),
    gate="genomics.silver",
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
    access=RowScope("shared"),
    gate="genomics.silver",
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
    gate="genomics.silver",
)

SV_CARRIER = T.StructType(
    [
        T.StructField("sample_id", T.StringType()),
        T.StructField("person_id", T.StringType()),
        T.StructField("gt", T.ArrayType(T.IntegerType())),  # recoded per ALT, as silver.genotypes
        T.StructField("phased", T.BooleanType()),
        T.StructField("gq", T.IntegerType()),
        T.StructField("dp", T.IntegerType()),
    ]
)

STRUCTURAL_VARIANTS = Table(
    "silver",
    "structural_variants",
    (
        col("sv_id", STRING, True, "build:contig:pos:end:ref:alt"),
        col("build", STRING, True),
        col("contig", STRING, True),
        col("pos", LONG, True, "1-based; for a symbolic allele the base before the event"),
        col("end", LONG, True, "INFO/END, else pos + len(ref) - 1"),
        col("ref", STRING, True),
        col("alt", STRING, True, "the symbolic (<DEL>, <CN0>) or breakend (G]chr17:198982]) allele"),
        col("vcf_id", STRING, doc="the record's ID column"),
        col("svtype", STRING, True, "INFO/SVTYPE, else from the allele: DEL, DUP, INV, INS, CNV, BND"),
        col("svlen", LONG, doc="INFO/SVLEN for this ALT"),
        col("cipos", T.ArrayType(INT), doc="INFO/CIPOS: confidence interval around pos"),
        col("ciend", T.ArrayType(INT), doc="INFO/CIEND: confidence interval around end"),
        col("allele_cn", INT, doc="copy number named by a <CNn> allele"),
        col("mate_id", STRING, doc="INFO/MATEID of a breakend"),
        col("mate_contig", STRING, doc="partner contig of a breakend (normalised)"),
        col("mate_pos", LONG, doc="partner position of a breakend"),
        col("bnd_orientation", STRING, doc="t[p[ | t]p] | ]p]t | [p[t, or .t / t. for a single breakend"),
        col("qual", DOUBLE),
        col("filter", T.ArrayType(STRING)),
        col("carriers", T.ArrayType(SV_CARRIER), doc="samples carrying this ALT, linked to person_id"),
        col("center_id", STRING, True),
        col("source_checksum", STRING, True),
        col("ingest_run_id", STRING, True),
    ),
    "One row per symbolic or breakend ALT of a VCF record, with its carriers. These alleles never "
    "go to silver.variants. Query carriers with LATERAL VIEW explode(carriers).",
    keys=("sv_id", "center_id", "source_checksum"),
    gate="genomics.silver",
)

REFERENCE_BLOCKS = Table(
    "silver",
    "reference_blocks",
    (
        col("person_id", STRING, True),
        col("sample_id", STRING, True),
        col("center_id", STRING, True),
        col("build", STRING),
        col("contig", STRING, True),
        col("start", LONG, True, "1-based, inclusive (the record's POS)"),
        col("end", LONG, True, "1-based, inclusive (INFO/END of a gVCF block, else the REF span)"),
        col("gq", INT, doc="the block's GQ (gVCF blocks report the lower bound of their GQ band)"),
        col("dp", INT, doc="the block's DP as sent"),
        col("source_checksum", STRING, True),
        col("ingest_run_id", STRING, True),
    ),
    "Positions called homozygous reference, per person: gVCF reference blocks (ALT <*> or "
    "<NON_REF> only) and ALT=. records. A position inside no block and with no call is a "
    "no-call, not reference.",
    partition_by=("contig",),
    keys=("center_id", "sample_id", "contig", "start", "source_checksum"),
    gate="genomics.silver",
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
    gate="genomics.silver",
)

# --- variant annotation ------------------------------------------------------------------------

REFERENCE_SOURCES = Table(
    "ops",
    "reference_sources",
    (
        col("source", STRING, True, "gtf | clinvar | gnomad | pharmcat | primekg | hetionet"),
        col("release", STRING, True, "given, else from the header (ClinVar ##fileDate, GENCODE "
            "version), else from the file name"),
        col("build", STRING, doc="GRCh37 | GRCh38, from the header when it says"),
        col("uri", STRING, True, "the file as given"),
        col("sha256", STRING, True),
        col("normalised_against", STRING, doc="FASTA the alleles were left-aligned against (VCF sources)"),
        col("records", LONG, True, "alleles (VCF, split per ALT) or transcripts (GTF) loaded"),
        col("skipped", LONG, True, "records or lines left out; reasons and lines in the run's warnings"),
        col("parsed_uri", STRING, True, "Parquet of the parsed, normalised records the annotation joins"),
        col("run_id", STRING, True, "the run that loaded it"),
        col("loaded_at", TIMESTAMP, True),
    ),
    "Annotation reference files, one row per file loaded: a source given no path to "
    "annotate_variants uses its latest loaded release from here.",
    keys=("source", "sha256"),
    gate="curation.annotations",
)

GENE_HIT = T.StructType(
    [
        T.StructField("gene_id", T.StringType()),
        T.StructField("gene_name", T.StringType()),
        T.StructField("gene_type", T.StringType()),
        T.StructField("strand", T.StringType()),
        T.StructField("region_class", T.StringType()),  # the most severe over its transcripts
        T.StructField("transcript_ids", T.ArrayType(T.StringType())),
    ]
)

DERIVED_ROW = (
    col("row_hash", LONG, True, "hash of the row's values: a re-run that computes the same values "
        "leaves the row untouched"),
    col("run_id", STRING, True, "the annotate_variants run that last changed the row"),
    col("updated_at", TIMESTAMP, True),
)

VARIANT_ANNOTATIONS = Table(
    "silver",
    "variant_annotations",
    (
        col("variant_id", STRING, True),
        col("build", STRING, True),
        col("contig", STRING, True),
        col("pos", LONG, True),
        col("ref", STRING, True),
        col("alt", STRING, True),
        col("region_class", STRING, doc="most severe over all genes: splice_acceptor | splice_donor "
            "| CDS | five_prime_UTR | three_prime_UTR | exon (non-coding transcript) | intron | "
            "intergenic; NULL when no GTF is loaded"),
        col("genes", T.ArrayType(GENE_HIT), doc="one entry per overlapping gene (empty: intergenic)"),
        col("gtf_release", STRING),
        col("clinvar_id", STRING, doc="ClinVar VariationID (the VCF ID column)"),
        col("clinvar_significance", STRING, doc="CLNSIG as ClinVar writes it (Pathogenic, "
            "Likely_pathogenic, Conflicting_classifications_of_pathogenicity ...)"),
        col("clinvar_review_status", STRING, doc="CLNREVSTAT as written"),
        col("clinvar_gene_info", STRING, doc="GENEINFO (SYMBOL:GeneID|...)"),
        col("clinvar_release", STRING, doc="release matched against (also on rows with no match)"),
        col("gnomad_af", DOUBLE),
        col("gnomad_ac", LONG),
        col("gnomad_an", LONG),
        col("gnomad_af_by_population", T.MapType(STRING, DOUBLE),
            doc="every AF_<label> INFO key of the file (afr, eas, nfe, ...; XX/XY where present)"),
        col("gnomad_filter", STRING, doc="FILTER of the gnomAD site (PASS, AC0, RF ...)"),
        col("gnomad_release", STRING, doc="release matched against (also on rows with no match)"),
        col("consequence", STRING, doc="first consequence term from VEP (--pick) or snpEff"),
        col("consequence_source", STRING, doc="tool and version that gave it"),
        *DERIVED_ROW,
    ),
    "One row per silver.variants site of the annotated build: gene and region class from a "
    "GTF/GFF3, ClinVar significance and gnomAD frequencies by exact allele match after the "
    "same normalisation as silver.variants. A new source release updates rows in place. "
    "Partitioned by build and contig: a release of one build rewrites only that build's files.",
    partition_by=("build", "contig"),
    keys=("variant_id",),
    access=RowScope("shared"),
    gate="curation.annotations",
)

VARIANT_STATS = Table(
    "silver",
    "variant_stats",
    (
        col("variant_id", STRING, True),
        col("scope", STRING, True, "'all', or the center_id of a province (its provincial center)"),
        col("contig", STRING, True),
        col("pos", LONG, True),
        col("files", LONG, True, "source files that report the site (a record at its position, "
            "or a carrier)"),
        col("n_samples", LONG, True, "samples of those files linked to a person"),
        col("n_hom_ref", LONG, True, "n_samples minus carriers: a sample without a non-reference "
            "call at a reported site counts as homozygous reference"),
        col("n_het", LONG, True, "carriers called 0/1"),
        col("n_hom_alt", LONG, True, "carriers called 1/1"),
        col("n_other", LONG, True, "carriers with a missing allele or not diploid (./1, 1)"),
        col("ac", LONG, True),
        col("an", LONG, True, "called alleles, non-carriers counted as diploid"),
        col("af", DOUBLE),
        col("call_rate", DOUBLE, doc="fully called genotypes / n_samples (only carriers can show "
            "a missing allele, so this is an upper bound)"),
        col("hwe_p", DOUBLE, doc="Hardy-Weinberg exact test (Wigginton, Cutler & Abecasis 2005) on "
            "n_hom_ref, n_het, n_hom_alt"),
        *DERIVED_ROW,
    ),
    "Cohort allele counts per silver.variants site, over all centers and per province.",
    partition_by=("contig",),
    keys=("variant_id", "scope"),
    access=RowScope("scope_or_all", "scope"),
    gate="curation.annotations",
)

# --- clinical ---------------------------------------------------------------------------------

HL7_MESSAGES = bronze(
    "hl7_messages",
    (
        col("message_control_id", STRING, True, "MSH-10"),
        col("message_type", STRING, True, "MSH-9.1, e.g. ADT or ORU"),
        col("trigger_event", STRING, doc="MSH-9.2, e.g. A01 or R01 (EVN-1 for v2.1, whose MSH-9 has none)"),
        col("message_structure", STRING, doc="MSH-9.3"),
        col("version", STRING, True, "MSH-12 as declared (2.1 ... 2.9.1)"),
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
    gate="clinical.bronze",
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
    gate="clinical.bronze",
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
    col("source_person_id", STRING, doc="the person pseudonym the source gave the record; person_id "
        "is the master person after linkage (silver.person_links maps one to the other)"),
)


def clinical(name: str, columns: tuple, doc: str, key: str) -> Table:
    """A silver clinical table: keyed on a pseudonymous record id, with its source."""
    return Table("silver", name, (col(key, STRING, True, "keyed pseudonym of the source record id"),
                                  *columns, *CLINICAL_SOURCE), doc, keys=(key,), gate="clinical.silver")


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
        col("kind", STRING, True, "request | statement | administration (HL7 RXE/RXO orders are "
            "requests, RAS RXA administrations)"),
        col("code", STRING, doc="HL7 RXE-2 / RXO-1 give code, RXA-5; FHIR medicationCodeableConcept"),
        col("code_system", STRING, doc="RxNorm, ATC (HL7 WC), NDC ... or as sent"),
        col("display", STRING),
        col("status", STRING, doc="FHIR status; HL7 orders ORC-5 (else ORC-1) mapped as v2-to-FHIR "
            "(request-status revoked -> cancelled or stopped), RXA-20/21 as for immunizations"),
        col("intent", STRING, doc="FHIR intent; HL7 orders are 'order'"),
        col("dose_value", DOUBLE, doc="HL7 RXE-3 / RXO-2 (a range's minimum; RXE-4 is used only "
            "when RXE-3 is empty), RXA-6; FHIR dose"),
        col("dose_unit", STRING, doc="UCUM when the unit maps to one, else as sent"),
        col("route", STRING, doc="RXR-1 / dosage route: display, else code"),
        col("start_time", TIMESTAMP, doc="HL7 RXE-1.4 / ORC-7.4, else TQ1-7, ORC-15, ORC-9; RXA-3; "
            "FHIR authoredOn / effective[x]"),
        col("end_time", TIMESTAMP, doc="HL7 RXE-1.5 / ORC-7.5, else TQ1-8; RXA-4; FHIR validity or "
            "effective period end"),
    ),
    "Medication orders, statements and administrations: HL7 ORC + RXE/RXO (OMP, RDE, RDS; keyed on "
    "the order number, so a later RDE updates the order) and RAS RXA; FHIR MedicationRequest, "
    "MedicationStatement and MedicationAdministration.",
    "medication_id",
)

PROCEDURES = clinical(
    "procedures",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("code", STRING, doc="PR1-3 / code"),
        col("code_system", STRING, doc="ICD-10-PCS (HL7 I10P), CPT (C4), ICD-9-CM (I9C), SNOMED CT ... "
            "or as sent"),
        col("display", STRING),
        col("status", STRING, doc="FHIR status; HL7 PR1 completed (PR1-20 D entered-in-error)"),
        col("performed_time", TIMESTAMP, doc="PR1-5 / performed[x]"),
    ),
    "Procedures from HL7 PR1 (ADT, BAR; keyed on PR1-19, else person, visit, code and time) and "
    "FHIR Procedure.",
    "procedure_id",
)

ALLERGIES = clinical(
    "allergies",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("substance_code", STRING, doc="AL1-3 / code: RxNorm, SNOMED CT, UNII ... (null when only text)"),
        col("substance_system", STRING, doc="code system by common name, or as sent"),
        col("substance_display", STRING),
        col("category", STRING, doc="food | medication | environment | biologic (comma separated); "
            "HL7 AL1-2 DA, FA, EA/AA/PA/LA mapped"),
        col("allergy_type", STRING, doc="allergy | intolerance"),
        col("criticality", STRING, doc="low | high | unable-to-assess; AL1-4 SV high, MI low (v2-to-FHIR)"),
        col("reaction", STRING, doc="manifestations as text, '; ' separated (AL1-5 / manifestation)"),
        col("reaction_code", STRING, doc="first coded manifestation (usually SNOMED CT)"),
        col("severity", STRING, doc="mild | moderate | severe: the worst reaction; HL7 AL1-4 MI/MO/SV"),
        col("clinical_status", STRING, doc="active | inactive | resolved; HL7 AL1 lists active allergies"),
        col("verification_status", STRING, doc="unconfirmed | confirmed | refuted | entered-in-error"),
        col("onset_time", TIMESTAMP, doc="AL1-6 identification date / onset[x]"),
        col("recorded_time", TIMESTAMP, doc="FHIR recordedDate"),
    ),
    "Allergies and intolerances from HL7 AL1 (keyed on person + substance) and FHIR AllergyIntolerance.",
    "allergy_id",
)

IMMUNIZATIONS = clinical(
    "immunizations",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("vaccine_code", STRING, True, "RXA-5 / vaccineCode, the CVX coding preferred"),
        col("vaccine_system", STRING, True, "CVX, NDC, SNOMED CT ... or as sent"),
        col("vaccine_display", STRING),
        col("status", STRING, True, "completed | not-done | entered-in-error (HL7 RXA-20/RXA-21 mapped)"),
        col("occurrence_time", TIMESTAMP, doc="RXA-3 / occurrenceDateTime"),
        col("primary_source", BOOL, doc="recorded by who gave it (RXA-9 00), not historical"),
        col("lot_number", STRING),
        col("manufacturer", STRING, doc="RXA-17 (MVX) / manufacturer display"),
        col("dose_value", DOUBLE, doc="RXA-6 (999, unknown, becomes null) / doseQuantity"),
        col("dose_unit", STRING, doc="UCUM when the unit maps to one, else as sent"),
        col("route", STRING, doc="RXR-1 / route: display, else code"),
        col("site", STRING, doc="RXR-2 / site: display, else code"),
    ),
    "Vaccinations from HL7 VXU RXA/RXR (keyed on person, vaccine and time) and FHIR Immunization.",
    "immunization_id",
)

DIAGNOSTIC_REPORTS = clinical(
    "diagnostic_reports",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("code", STRING, True, "OBR-4 / code: the panel or study"),
        col("code_system", STRING, True),
        col("loinc_code", STRING, doc="the code when the system is LOINC"),
        col("display", STRING),
        col("category", STRING, doc="OBR-24 / category: diagnostic service section (LAB, HM, RAD ...)"),
        col("status", STRING, doc="OBR-25 (F, P, C ...) or FHIR status"),
        col("effective_time", TIMESTAMP, doc="OBR-7 / effective[x]"),
        col("issued_time", TIMESTAMP, doc="OBR-22 / issued"),
        col("result_observation_ids", T.ArrayType(STRING),
            doc="observation_id of each result in silver.observations (OBX after the OBR / result)"),
        col("conclusion", STRING, doc="FHIR conclusion"),
    ),
    "Reports from HL7 OBR (keyed on the order number) and FHIR DiagnosticReport, with their results.",
    "report_id",
)

FOLLOWUP_ANSWERS = clinical(
    "followup_answers",
    (
        col("person_id", STRING, True),
        col("encounter_id", STRING),
        col("response_id", STRING, True, "keyed pseudonym of the QuestionnaireResponse (groups its answers)"),
        col("response_status", STRING, doc="in-progress | completed | amended | entered-in-error | stopped"),
        col("authored_time", TIMESTAMP, doc="QuestionnaireResponse.authored (UTC)"),
        col("questionnaire_url", STRING, True, "canonical url of the Questionnaire answered"),
        col("questionnaire_version", STRING, doc="as the response names it, else the version of the "
            "Questionnaire it was checked against"),
        col("link_path", STRING, True, "linkIds from the top item down to this one, '/'-joined (phq9/q3)"),
        col("link_id", STRING, True, "the item's own linkId"),
        col("item_text", STRING, doc="the item's text as the response shows it, else the questionnaire's"),
        col("item_type", STRING, doc="Questionnaire item type: integer, choice, boolean, quantity ..."),
        col("item_position", STRING, doc="index of each item of link_path among its siblings, '/'-joined; "
            "'i.k' where the next item sits in answer k (tells repeated groups apart)"),
        col("answer_index", INT, True, "0-based, among the item's answers (repeating items)"),
        col("value_type", STRING, doc="the answer's value[x]: Integer, Decimal, Coding, String, Boolean ..."),
        col("value_num", DOUBLE, doc="Integer, Decimal, Quantity value"),
        col("value_text", STRING, doc="String, Uri, Coding display, Attachment url, Reference"),
        col("value_code", STRING, doc="Coding code"),
        col("value_system", STRING, doc="Coding system by common name (LOINC, SNOMED CT ...) or as sent"),
        col("value_bool", BOOL),
        col("value_date", DATE),
        col("value_datetime", TIMESTAMP, doc="dateTime answer in UTC"),
        col("value_time", STRING, doc="time answer as sent (hh:mm:ss)"),
        col("value_unit", STRING, doc="Quantity unit: UCUM when it maps to one, else as sent"),
        col("observation_id", STRING, doc="the silver.observations row extracted from this answer when "
            "its item carries a code (SDC observation-based extraction)"),
    ),
    "Answers of FHIR QuestionnaireResponses (mobile follow-up apps), one row per answer, items nested "
    "at any depth, each response checked against the Questionnaire it names.",
    "answer_id",
)

PATIENT_IDENTITIES = clinical(
    "patient_identities",
    (
        col("person_id", STRING, True, "pseudonym of this identity (assigning authority + identifier)"),
        col("assigning_authority", STRING, True, "CX-4 / identifier.system; the center when absent"),
        col("identifier_type", STRING, doc="CX-5 / identifier.type (MR, NI ...); FHIR-ID for the logical id"),
        col("identifier_key", STRING, True, "keyed pseudonym of the identifier value"),
        col("is_primary", BOOL, True, "the identity the record's person_id was derived from"),
        col("merged_into_person_id", STRING, doc="survivor after an ADT A40 merge or a FHIR "
            "Patient.link replaced-by"),
        col("sex", STRING, doc="M, F, O, U"),
        col("birth_year", INT),
        col("birth_date_key", STRING, doc="keyed pseudonym of the full birth date (for linkage)"),
        col("family_name_key", STRING, doc="keyed pseudonym of the normalised family name"),
        col("given_name_key", STRING, doc="keyed pseudonym of the normalised first given name"),
        col("postal_prefix", STRING, doc="first 3 characters of the postal code"),
        col("link_key", STRING, doc="pseudonym of (authority, identifier): equal keys link "
            "deterministically; null for a resident ID that fails its check digit"),
        col("national_id_key", STRING, doc="keyed resident ID (居民身份证号码), valid numbers only"),
        col("national_id_valid", BOOL, doc="for a resident ID: whether its MOD 11-2 check digit holds"),
        col("family_pinyin_key", STRING, doc="keyed toneless pinyin of the family name"),
        col("given_pinyin_key", STRING, doc="keyed toneless pinyin of the given name (same namespace)"),
        col("given_root_key", STRING, doc="keyed last syllable of the given name (nicknames)"),
        col("family_clk", STRING, doc="CLK (keyed bigram Bloom filter, base64) of the family pinyin"),
        col("given_clk", STRING, doc="CLK of the given-name pinyin"),
        col("name_clk", STRING, doc="CLK of the family and given pinyin as a token set"),
        col("name_char_clk", STRING, doc="CLK of the name in characters"),
        col("birth_year_key", STRING),
        col("birth_month_key", STRING, doc="keyed month (same namespace as the day)"),
        col("birth_day_key", STRING),
        col("phone_keys", T.ArrayType(STRING), doc="keyed normalised phone numbers"),
        col("address_key", STRING, doc="keyed normalised address"),
        col("address_clk", STRING, doc="CLK of the normalised address"),
    ),
    "Source identities for person linkage: one row per identifier a source used for a person "
    "(HL7 PID-3 repetitions and MRG-1, FHIR Patient identifiers, DICOM PatientID and other ids, "
    "sample-manifest patient ids), with keyed comparison features (no direct identifier is stored).",
    "identity_id",
)

# --- master person index ---------------------------------------------------------------------

PERSONS = Table(
    "silver",
    "persons",
    (
        col("person_id", STRING, True, "the master person id every silver table joins on"),
        col("status", STRING, True, "active | retired"),
        col("merged_into", STRING, doc="for a retired person: the person that holds its identities now"),
        col("identity_count", LONG, True, "source identities (silver.person_links rows) linked to it"),
        col("source_person_count", LONG, True, "distinct source pseudonyms linked to it"),
        col("centers", T.ArrayType(STRING), doc="centers that know this person"),
        col("source_formats", T.ArrayType(STRING), doc="HL7v2, FHIR, DICOM, MANIFEST"),
        col("created_run_id", STRING, True, "link_persons run that created it"),
        col("created_at", TIMESTAMP, True),
        col("retired_run_id", STRING),
        col("updated_run_id", STRING, True),
        col("updated_at", TIMESTAMP, True),
    ),
    "One row per person of the master person index. A person keeps its id across runs; a merge "
    "keeps the surviving id and marks the other retired with merged_into.",
    keys=("person_id",),
    access=RowScope("centers", "centers"),
    gate="curation.persons",
)

PERSON_LINKS = Table(
    "silver",
    "person_links",
    (
        col("identity_id", STRING, True, "silver.patient_identities.identity_id"),
        col("person_id", STRING, True, "the master person"),
        col("source_person_id", STRING, True, "the pseudonym the source's records carry"),
        col("center_id", STRING, True),
        col("source_format", STRING, True, "HL7v2 | FHIR | DICOM | MANIFEST"),
        col("assigning_authority", STRING),
        col("identifier_type", STRING),
        col("identifier_key", STRING, doc="keyed identifier value"),
        col("link_rule", STRING, True, "self | hl7_a40 | fhir_link | identifier | national_id | "
            "probabilistic: the strongest evidence joining it to the rest of its person"),
        col("match_weight", DOUBLE, doc="Splink match weight of that pair (probabilistic links)"),
        col("match_probability", DOUBLE),
        col("linked_to", STRING, doc="source_person_id of the other side of that evidence"),
        col("linked_run_id", STRING, True, "run that made the current assignment"),
        col("first_run_id", STRING, True, "run that first linked this identity"),
        col("updated_at", TIMESTAMP, True),
    ),
    "Every source identity and its master person, with the rule or match probability that "
    "linked it. Values stay keyed.",
    keys=("identity_id",),
    gate="curation.persons",
)

PERSON_LINK_REVIEW = Table(
    "silver",
    "person_link_review",
    (
        col("pair_id", STRING, True, "keyed id of the (sorted) pair of source pseudonyms"),
        col("source_person_id_l", STRING, True),
        col("source_person_id_r", STRING, True),
        col("person_id_l", STRING, True),
        col("person_id_r", STRING, True),
        col("match_weight", DOUBLE, True),
        col("match_probability", DOUBLE, True),
        col("reason", STRING, True, "between thresholds | conflicting national ids"),
        col("comparison_levels", STRING, doc="JSON: the Splink level of each comparison (no values)"),
        col("run_id", STRING, True),
        col("created_at", TIMESTAMP, True),
    ),
    "Pairs of different persons that may be the same person, for a human to decide: Splink "
    "scored them between the review and match thresholds, or above it with conflicting resident "
    "IDs. Replaced on every linkage run.",
    keys=("pair_id",),
    gate="curation.persons",
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
    gate="imaging",
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
        col("source_person_id", STRING, doc="pseudonym of (IssuerOfPatientID, PatientID), the "
            "PatientID of the de-identified copy; set by person linkage"),
    ),
    "One row per de-identified DICOM instance, pointing at its copy in the curated zone.",
    keys=("sop_instance_uid",),
    gate="imaging",
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
    gate="imaging",
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
    gate="imaging",
)

# --- gold ------------------------------------------------------------------------------------

COHORT_DEFINITIONS = Table(
    "gold",
    "cohort_definition",
    (
        col("cohort_definition_id", LONG, True),
        col("name", STRING, True, "the definition file's name (cohorts/<name>.yaml)"),
        col("title", STRING, True),
        col("description", STRING),
        col("definition_text", STRING, True, "the YAML as published"),
        col("checksum", STRING, True, "sha256 of the validated definition (comments do not count)"),
        col("updated_at", TIMESTAMP, True),
    ),
    "What each published cohort means: the definition as last published.",
    keys=("cohort_definition_id",),
    access=RowScope("shared"),
    gate="cohorts.gold",
)

COHORT = Table(
    "gold",
    "cohort",
    (
        col("cohort_definition_id", LONG, True),
        col("subject_id", STRING, True, "person_id (silver.persons)"),
        col("cohort_start_date", DATE, True, "the index event's date"),
        col("cohort_end_date", DATE, True),
        col("center_id", STRING, True, "center of the index event"),
    ),
    "OMOP-style cohort membership: one row per person and cohort. Each build of a cohort is one "
    "Delta version, recorded in gold.cohort_versions (read it back with VERSION AS OF).",
    partition_by=("cohort_definition_id",),
    keys=("cohort_definition_id", "subject_id"),
    gate="cohorts.gold",
)

COHORT_VERSIONS = Table(
    "gold",
    "cohort_versions",
    (
        col("cohort_definition_id", LONG, True),
        col("name", STRING, True),
        col("version", LONG, True, "the gold.cohort Delta version this build committed"),
        col("checksum", STRING, True, "gold.cohort_definition checksum of the definition built"),
        col("inputs_json", STRING, True, "Delta version of every input table read"),
        col("members", LONG, True),
        col("features_version", LONG, doc="Delta version of gold.cohort_<name>_features it wrote"),
        col("run_id", STRING, True),
        col("published_at", TIMESTAMP, True),
    ),
    "One row per cohort publication, so a paper can cite 'cohort X, version N' and get the same "
    "rows back. A rebuild with the same members commits nothing and keeps the version: a new "
    "definition checksum is then a second row for that version.",
    keys=("cohort_definition_id", "version", "checksum"),
    access=RowScope("shared"),
    gate="cohorts.gold",
)

COHORT_INCLUSION_STATS = Table(
    "gold",
    "cohort_inclusion_stats",
    (
        col("cohort_definition_id", LONG, True),
        col("version", LONG, True, "gold.cohort_versions.version these counts describe"),
        col("rule_sequence", INT, True, "0 index event, 1 observation window, then each rule in order"),
        col("rule_name", STRING, True),
        col("rule_kind", STRING, True, "index | observation | inclusion | exclusion"),
        col("scope", STRING, True, "all | center | tier"),
        col("center_id", STRING, True, "the index event's center, or 'all'"),
        col("tier", STRING, True, "that center's tier, or 'all'"),
        col("persons", LONG, True, "persons left after this rule"),
        col("events", LONG, True, "index events left after this rule"),
    ),
    "Attrition: what is left after each rule, overall, per center and per tier, at person and "
    "index-event level.",
    keys=("cohort_definition_id", "version", "rule_sequence", "scope", "center_id", "tier"),
    access=RowScope("scope_or_all", "center_id"),
    gate="cohorts.gold",
)

LATEST_LAB = T.StructType([
    T.StructField("loinc_code", T.StringType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("unit", T.StringType()),
    T.StructField("effective_time", T.TimestampType()),
])


def cohort_features(name: str) -> Table:
    """``gold.cohort_<name>_features``: one row per member of one cohort."""
    return Table(
        "gold",
        f"cohort_{name}_features",
        (
            col("cohort_definition_id", LONG, True),
            col("subject_id", STRING, True),
            col("center_id", STRING, True, "center of the index event"),
            col("tier", STRING, True),
            col("cohort_start_date", DATE, True),
            col("cohort_end_date", DATE, True),
            col("sex", STRING, doc="M, F, O, U: the most frequent across the person's identities"),
            col("birth_year", INT),
            col("age_at_index", INT),
            col("diagnoses", T.ArrayType(STRING), doc="distinct ICD-10 categories (3 characters), sorted"),
            col("latest_labs", T.ArrayType(LATEST_LAB), doc="latest result per LOINC code the "
                "definition names (rules and features.labs), as of any time"),
            col("genotyped", BOOL, True, "the person has a sample in silver.samples"),
            col("carrier", T.MapType(STRING, BOOL), doc="per gene of the definition's genomic rules: "
                "carries a variant that meets the rule"),
            col("imaging_studies", LONG, True, "silver.imaging_studies of the person"),
            col("medications", T.ArrayType(STRING), doc="distinct ATC or RxNorm codes, sorted"),
        ),
        f"Features of the members of cohort {name}, rebuilt with each publication.",
        keys=("subject_id",),
    )


# --- pharmacogenomics -------------------------------------------------------------------------

PGX_RELEASE = col("release", STRING, True, "PharmCAT commit and definitions version (ops.reference_sources)")

PGX_POSITIONS = Table(
    "silver",
    "pgx_positions",
    (
        col("gene", STRING, True),
        col("contig", STRING, True),
        col("pos", LONG, True, "GRCh38, VCF orientation"),
        col("rsid", STRING),
        col("ref", STRING, True),
        col("alts", T.ArrayType(STRING), True),
        PGX_RELEASE,
    ),
    "Every allele-defining position of the pharmacogenes (PharmCAT), per release.",
    keys=("gene", "pos", "release"),
    access=RowScope("shared"),
)

PGX_ALLELES = Table(
    "silver",
    "pgx_alleles",
    (
        col("gene", STRING, True),
        col("allele", STRING, True, "named allele (*2, c.1905+1G>A (*2A), rs9923231 variant (T))"),
        col("function", STRING, doc="CPIC allele function"),
        col("activity_value", STRING),
        col("score", INT, True, "defining positions (the more specific allele wins a tie)"),
        col("is_reference", BOOL, True),
        col("defining", T.MapType(LONG, STRING), True, "position -> base it defines"),
        PGX_RELEASE,
    ),
    "Named alleles of the pharmacogenes (PharmCAT/PharmVar/CPIC), per release.",
    keys=("gene", "allele", "release"),
    access=RowScope("shared"),
)

PGX_GUIDANCE = Table(
    "silver",
    "pgx_guidance",
    (
        col("drug", STRING, True),
        col("gene", STRING, True),
        col("phenotype", STRING, True),
        col("recommendation", STRING, True),
        col("classification", STRING, True, "CPIC strength: Strong | Moderate | Optional"),
        col("actionable", BOOL, True, "departs from standard prescribing"),
        col("guideline", STRING, True, "the CPIC guideline behind the row"),
        col("url", STRING, True),
        col("atc", STRING, doc="WHO ATC code of the drug"),
        col("rxnorm", STRING, doc="RxNorm ingredient of the drug"),
        PGX_RELEASE,
    ),
    "CPIC gene-drug guidance per phenotype (reference/cpic/guidance.csv).",
    keys=("drug", "gene", "phenotype", "release"),
    access=RowScope("shared"),
)

PGX_DIPLOTYPES = Table(
    "silver",
    "pgx_diplotypes",
    (
        col("person_id", STRING, True),
        col("gene", STRING, True),
        col("status", STRING, True, "called | partial (positions missing, called from the rest) | "
            "ambiguous (equal fits with different phenotypes) | uncallable"),
        col("diplotype", STRING),
        col("allele1", STRING),
        col("allele2", STRING),
        col("phenotype", STRING, doc="CPIC phenotype of the diplotype (Indeterminate when unmapped)"),
        col("activity_score", STRING),
        col("phased", BOOL, doc="matched per chromosome (every heterozygous call phased)"),
        col("positions_called", INT, True),
        col("positions_total", INT, True),
        col("missing_positions", T.ArrayType(STRING), doc="rsids (or contig:pos) with no call: no-calls, "
            "never taken as reference"),
        col("alternatives", T.ArrayType(STRING), doc="other diplotypes that fit equally well"),
        col("reason", STRING, doc="why the gene is partial, ambiguous or uncallable"),
        col("sample_ids", T.ArrayType(STRING), doc="samples whose calls were used"),
        col("centers", T.ArrayType(STRING), doc="centers that sent those samples"),
        PGX_RELEASE,
        col("run_id", STRING, True),
        col("updated_at", TIMESTAMP, True),
    ),
    "One row per genotyped person and pharmacogene: the best pair of named alleles for the calls "
    "at the defining positions (VCF records and gVCF reference blocks), and the CPIC phenotype.",
    keys=("person_id", "gene"),
    access=RowScope("centers", "centers"),
    gate="genomics.runs",
)

PGX_RECOMMENDATIONS = Table(
    "gold",
    "pgx_recommendations",
    (
        col("person_id", STRING, True),
        col("drug", STRING, True),
        col("gene", STRING, True),
        col("diplotype", STRING, True),
        col("phenotype", STRING, True),
        col("recommendation", STRING, True),
        col("classification", STRING, True),
        col("actionable", BOOL, True),
        col("guideline", STRING, True),
        col("url", STRING, True),
        col("centers", T.ArrayType(STRING)),
        PGX_RELEASE,
        col("updated_at", TIMESTAMP, True),
    ),
    "CPIC guidance for each person's called phenotypes (silver.pgx_diplotypes x silver.pgx_guidance).",
    keys=("person_id", "drug", "gene"),
    access=RowScope("centers", "centers"),
    gate="genomics.runs",
)

MEDICATION_ALERTS = Table(
    "gold",
    "medication_alerts",
    (
        col("medication_id", STRING, True, "silver.medications row that triggered it"),
        col("person_id", STRING, True),
        col("center_id", STRING, True, "center of the prescription"),
        col("drug", STRING, True),
        col("medication_code", STRING),
        col("code_system", STRING),
        col("prescribed_at", TIMESTAMP),
        col("gene", STRING, True),
        col("diplotype", STRING, True),
        col("phenotype", STRING, True),
        col("recommendation", STRING, True),
        col("guideline", STRING, True),
        col("run_id", STRING, True),
        col("created_at", TIMESTAMP, True),
    ),
    "A prescription of a drug whose CPIC guidance is actionable for the person's phenotype "
    "(for example clopidogrel for a CYP2C19 poor metabolizer).",
    keys=("medication_id", "gene"),
    gate="genomics.runs",
)

# --- knowledge graph --------------------------------------------------------------------------

KG_RELEASE = col("release", STRING, True, "lake rows: the build_kg run that derived them; external "
                 "graphs: the release named on load (registered in ops.reference_sources)")

KG_NODES = Table(
    "gold",
    "kg_nodes",
    (
        col("node_id", STRING, True, "namespaced and stable: person:<person_id>, variant:<variant_id>, "
            "gene:<HGNC symbol>, disease:ICD10:C34, drug:<name> | drug:ATC:<code> | drug:DrugBank:<id>, "
            "imaging_study:<uid>, or <type>:<prefix>:<id> from an external graph"),
        col("type", STRING, True, "person | variant | gene | disease | drug | imaging_study | ... "
            "(external graphs add their own: phenotype, pathway, anatomy ...)"),
        col("name", STRING, doc="display name; NULL for persons (a person is only its person_id)"),
        col("source", STRING, True, "lake table that names it first, or primekg | hetionet"),
        col("source_id", STRING, doc="the id in that source (Ensembl gene id, NCBIGene:1956, "
            "DrugBank:DB00758 ...)"),
        KG_RELEASE,
    ),
    "Nodes of the precision-medicine knowledge graph: what the lake derives (rebuilt by build_kg) "
    "and the external graph releases loaded with `omicslake kg load` (kept until replaced).",
    keys=("node_id", "source", "release"),
    gate="curation.kg",
)

KG_EDGES = Table(
    "gold",
    "kg_edges",
    (
        col("src", STRING, True, "gold.kg_nodes.node_id"),
        col("dst", STRING, True, "gold.kg_nodes.node_id"),
        col("relation", STRING, True, "carries | in_gene | clinvar | cpic_guideline | diagnosed_with | "
            "prescribed | has_imaging_study; PrimeKG's relation; Hetionet's metaedge verb"),
        col("source", STRING, True, "lake table the edge is derived from, or primekg | hetionet"),
        col("evidence", STRING, doc="ClinVar significance, CPIC guideline, records=N, region class; "
            "PrimeKG display_relation; Hetionet metaedge (CbG)"),
        KG_RELEASE,
    ),
    "Edges of the knowledge graph, one row per link and source. Query the lake's own rows plus "
    "the latest release of each external graph (docs/querying.md), or `omicslake kg neighbors`.",
    keys=("src", "dst", "relation", "evidence", "source", "release"),
    gate="curation.kg",
)


# --- quarantine ------------------------------------------------------------------------------

QUARANTINE_VCF = quarantine("vcf", "VCF/BCF records and manifests that could not be accepted.")
QUARANTINE_HL7 = quarantine("hl7", "HL7 v2 messages that could not be parsed or are not supported.")
QUARANTINE_FHIR = quarantine("fhir", "FHIR JSON that is invalid, or resources that fail validation.")
QUARANTINE_DICOM = quarantine("dicom", "Files that are not DICOM, or truncated or corrupt instances.")
QUARANTINE_BAM = quarantine(
    "bam", "BAM/CRAM files that cannot be QC'd: unreadable, truncated, no index, sample not in manifest."
)

ALL_TABLES: tuple[Table, ...] = (
    CENTERS,
    INGEST_RUNS,
    QUALITY_RESULTS,
    AUDIT_LOG,
    CREDENTIALS,
    VCF_HEADERS,
    VCF_VARIANTS,
    SAMPLES,
    VARIANTS,
    GENOTYPES,
    STRUCTURAL_VARIANTS,
    REFERENCE_BLOCKS,
    ALIGNMENT_QC,
    REFERENCE_SOURCES,
    VARIANT_ANNOTATIONS,
    VARIANT_STATS,
    HL7_MESSAGES,
    FHIR_RESOURCES,
    ENCOUNTERS,
    CONDITIONS,
    OBSERVATIONS,
    MEDICATIONS,
    PROCEDURES,
    ALLERGIES,
    IMMUNIZATIONS,
    DIAGNOSTIC_REPORTS,
    FOLLOWUP_ANSWERS,
    PATIENT_IDENTITIES,
    PERSONS,
    PERSON_LINKS,
    PERSON_LINK_REVIEW,
    DICOM_INSTANCES,
    IMAGING_INSTANCES,
    IMAGING_SERIES,
    IMAGING_STUDIES,
    COHORT_DEFINITIONS,
    COHORT,
    COHORT_VERSIONS,
    COHORT_INCLUSION_STATS,
    PGX_POSITIONS,
    PGX_ALLELES,
    PGX_GUIDANCE,
    PGX_DIPLOTYPES,
    PGX_RECOMMENDATIONS,
    MEDICATION_ALERTS,
    KG_NODES,
    KG_EDGES,
    QUARANTINE_VCF,
    QUARANTINE_HL7,
    QUARANTINE_FHIR,
    QUARANTINE_DICOM,
    QUARANTINE_BAM,
)

"""Connectors: everything that touches an outside format or protocol (VCF/BCF, BAM/CRAM, DICOM,
HL7 v2 and MLLP, FHIR, GTF, PharmCAT, knowledge-graph releases, htsget, the center upload API
and its client, Airflow's REST API).

Connectors import only the core (``omicslake``'s core modules) and ``schemas``; jobs and the
entry points use them (import-linter contracts in pyproject.toml).
"""

__all__ = [
    "airflow_api",
    "alleles",
    "annotation_sources",
    "api_engine",
    "bam",
    "clinical_records",
    "consequence",
    "contigs",
    "dicom",
    "dicom_deid",
    "dicom_identity",
    "dicom_scp",
    "dicom_thumbnail",
    "fhir",
    "fhir_clinical",
    "fhir_followup",
    "gtf",
    "hl7",
    "hl7_clinical",
    "hts_index",
    "htsget",
    "kg_formats",
    "manifest",
    "mllp",
    "normalise",
    "person_features",
    "pharmcat",
    "reference",
    "ucum",
    "upload_api",
    "upload_client",
    "upload_trigger",
    "uploads",
    "vcf",
    "vcf_arrow",
    "vcf_carriers",
    "vcf_chunks",
]

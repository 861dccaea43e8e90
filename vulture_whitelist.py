"""Names that vulture (``make lint``, config in pyproject.toml) cannot see being used.

vulture reads the six packages only. Listed here, each with why: names a library uses by name,
and the public helpers that only tests/ and benchmarks/ call. Everything else that nothing uses
is reported; dead code is removed, never listed here.
"""

from vulture.whitelist_utils import Whitelist

# pydicom: Dataset elements are set by keyword (the de-identifier, the SCP, generated demo files)
dicom = Whitelist()
dicom.AccessionNumber
dicom.AcquisitionDate
dicom.BodyPartExamined
dicom.CodeMeaning
dicom.CodeValue
dicom.CodingSchemeDesignator
dicom.ContentDate
dicom.DeidentificationMethod
dicom.DeidentificationMethodCodeSequence
dicom.ImplementationClassUID
dicom.ImplementationVersionName
dicom.InstanceNumber
dicom.InstitutionName
dicom.IssuerOfPatientID
dicom.LongitudinalTemporalInformationModified
dicom.MediaStorageSOPClassUID
dicom.MediaStorageSOPInstanceUID
dicom.Modality
dicom.PatientBirthDate
dicom.PatientID
dicom.PatientIdentityRemoved
dicom.PatientName
dicom.PatientSex
dicom.SeriesDate
dicom.SeriesDescription
dicom.SeriesNumber
dicom.SeriesTime
dicom.SpecificCharacterSet
dicom.StudyDate
dicom.StudyDescription
dicom.StudyID
dicom.StudyTime
dicom.TransferSyntaxUID

# pynetdicom: settings of the Storage SCP's application entity
dicom.supported_contexts
dicom.require_calling_aet

# pysam: fields of the AlignedSegments the demo BAM is written from
bam = Whitelist()
bam.mapping_quality
bam.next_reference_id
bam.next_reference_start
bam.query_name
bam.query_qualities
bam.query_sequence
bam.reference_id

# Great Expectations: context settings
bam.progress_bars

# dataclass fields written out with dataclasses.asdict (upload outcomes as JSON, upload state files)
fields = Whitelist()
fields.http_status
fields.resumed_from
fields.created_at
fields.received_at

# pydantic: the model's config, and the rule kinds a Criterion reads with getattr(self, kind)
fields.model_config
fields.diagnosis
fields.medication

# Airflow listener hook arguments: pluggy passes them by name
previous_state
task_instance

# click.Command method overridden for the `upload` default command's usage line
fields.format_usage

# splink's Spark backend: the checkpoint folder it asks its database API for
fields._get_checkpoint_dir_path

# asyncio: the MLLP server keeps its commit task referenced, or the loop may drop it
fields._committer

# FastAPI: htsget's query parameters, declared on the ticket routes for the OpenAPI document (the
# service reads and checks them from request.query_params)
referenceName

# functools.lru_cache: part of the cache key (a rewritten index invalidates the layout)
index_mtime_ns

# helpers that tests/ and benchmarks/ call: free loopback ports, the demo inputs, the generated
# population's truth and feeds, the demo network, the parsers' reference paths
tests = Whitelist()
tests.free_port
tests.wait_for_port
tests.make_demo_inputs
tests.demo_network
tests.invalid_ids
tests.truth
tests.clear_values
tests.next_batch
tests.write_feeds
tests.dice
tests.iter_records
tests.read_dataset  # one DICOM file parsed whole: the reader's error tests
tests.map_instance  # one instance through the job's mapping: the golden de-identification fixture
# Airflow REST calls the live-stack test makes
tests.set_paused
tests.dag_run
tests.task_instances

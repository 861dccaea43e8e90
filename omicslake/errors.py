"""Exceptions that carry a message a user can act on."""


class OmicslakeError(Exception):
    """Base class: the CLI prints these without a traceback."""


class SettingsError(OmicslakeError):
    """A setting (environment variable) is missing or malformed."""


class EngineError(OmicslakeError):
    """The Spark engine could not be started or reached."""


class InputError(OmicslakeError):
    """An input file as a whole cannot be ingested (corrupt, truncated, wrong header)."""


class QualityError(OmicslakeError):
    """A critical data-quality expectation failed."""


class RegistryError(OmicslakeError):
    """The center registry is malformed, or names no such center."""


class StorageError(OmicslakeError):
    """The storage root cannot be reached the way a step needs (a missing client library)."""

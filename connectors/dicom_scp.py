"""DICOM C-STORE receiver (Storage SCP) built on pynetdicom.

Each received instance is written as a Part 10 file to ``landing/dicom/<center>/`` durably
(temp file, fsync, rename, fsync of the folder, as the MLLP listener does) before the SCP
answers Success, so an instance the modality saw stored is never lost. Associations from
calling AE titles that are not configured for the center are rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from connectors.mllp import land

log = logging.getLogger(__name__)
SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700


@dataclass
class ScpStats:
    stored: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class StorageScp:
    def __init__(self, landing: Path, center_id: str, ae_title: str, calling_aes: list[str]):
        if not calling_aes:
            raise ValueError(f"no calling AE titles configured for center {center_id}")
        self.folder = landing / "dicom" / center_id
        self.stats = ScpStats()
        self.ae = AE(ae_title=ae_title)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.add_supported_context(Verification)
        self.ae.require_calling_aet = list(calling_aes)
        self._server = None

    def _on_store(self, event) -> int:
        try:
            data = event.encoded_dataset()
            sop = str(event.request.AffectedSOPInstanceUID)
            land(self.folder, data, sop, suffix=".dcm")
        except Exception as exc:  # the SCU must hear about it, and retry
            self.stats.failed += 1
            self.stats.errors.append(str(exc))
            log.exception("could not land instance")
            return OUT_OF_RESOURCES
        self.stats.stored += 1
        return SUCCESS

    def start(self, host: str, port: int):
        """Serve in background threads; returns the bound (host, port)."""
        self._server = self.ae.start_server((host, port), block=False,
                                            evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self._server.server_address[:2]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

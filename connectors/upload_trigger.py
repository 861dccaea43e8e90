"""An accepted upload starts the DAG that ingests it (when ``OMICSLAKE_AIRFLOW_URL`` is set).

After a file lands, ``UploadTrigger.submit`` returns at once; a background thread builds the
run's conf from the receipt (so the run reads exactly that file), calls Airflow's REST API v2
(``POST /api/v2/dags/{dag_id}/dagRuns`` with run id ``upload__<receipt>``, so a retried call
cannot start it twice) and stores the run id in the receipt, which then reads ``ingesting``
until ``ops.ingest_runs`` has the file. A file that cannot be ingested alone (a manifest, an
index, a VCF/BAM before its center sent any manifest, a BAM before its index) is left
``received`` with the reason in the receipt's ``note``. A failed trigger is logged and audited;
the upload stays landed and the DAG's next scheduled landing scan (or a manual run) reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from connectors.airflow_api import AirflowClient, AirflowError
from connectors.bam import find_index
from connectors.uploads import Receipt, UploadStore

log = logging.getLogger(__name__)

INDEX_SUFFIXES = (".tbi", ".csi", ".bai", ".crai")
ALIGNMENT_SUFFIXES = (".bam", ".cram")
ATTEMPTS = 3


def newest_manifest(landing_dir: Path, center_id: str) -> Path | None:
    """The newest file under STATE/landing/manifest/<center>/ (by modification time)."""
    root = landing_dir / "manifest" / center_id
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name)) if files else None


def indexed_file(index: Path) -> Path | None:
    """The alignment file an index sits next to (``x.bam.bai`` or ``x.bai`` -> ``x.bam``)."""
    stem = index.with_suffix("")
    for cand in (stem, *(stem.with_suffix(s) for s in ALIGNMENT_SUFFIXES)):
        if cand != index and cand.suffix.lower() in ALIGNMENT_SUFFIXES and cand.is_file():
            return cand
    return None


def run_conf(receipt: Receipt, landing_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The ``dag_id`` DAG's conf that ingests exactly this file, or (None, why it is not started)."""
    center, path = receipt.center_id, receipt.path
    name = receipt.filename.lower()
    if receipt.feed in ("hl7", "fhir"):
        other = "fhir" if receipt.feed == "hl7" else "hl7"
        batch = [{"center_id": center, "paths": [path]}]
        return {receipt.feed: batch, other: [], "scan_landing": False}, None
    if receipt.feed == "dicom":
        return {"dicom": [{"center_id": center, "paths": [path]}]}, None
    if receipt.feed == "manifest":
        return None, ("a manifest is not ingested on its own: the next VCF or BAM upload of "
                      f"{center} uses the newest one")
    if name.endswith(INDEX_SUFFIXES) and receipt.feed == "vcf":
        return None, "an index: it is read with the VCF it indexes"
    if name.endswith(INDEX_SUFFIXES):
        target = indexed_file(Path(path))
        if target is None:
            return None, ("an index: the alignment file it indexes has not landed yet; "
                          "that file's upload starts the run")
        path = str(target)
    manifest = newest_manifest(landing_dir, center)
    if manifest is None:
        return None, (f"no sample manifest from {center} yet: upload one (feed manifest), then send this "
                      "file again or start omicslake_genomics with it")
    if receipt.feed == "vcf":
        return {"batches": [{"center_id": center, "vcf": path, "manifest": str(manifest)}]}, None
    if find_index(path) is None:
        return None, "no index (.bai/.csi/.crai) next to it yet: its upload starts the run"
    return {"alignments": [{"center_id": center, "paths": [path], "manifest": str(manifest)}]}, None


class UploadTrigger:
    """Starts DAG runs for landed uploads on a small thread pool, off the request path."""

    def __init__(self, client: AirflowClient, store: UploadStore,
                 audit: Callable[..., None], retry_wait: float = 1.0):
        self.client, self.store, self.audit = client, store, audit
        self.retry_wait = retry_wait
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dag-trigger")

    def submit(self, receipt: Receipt, principal: str, client: str):
        return self._pool.submit(self._run, receipt, principal, client)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def _run(self, receipt: Receipt, principal: str, client: str) -> Receipt:
        try:
            return self._trigger(receipt, principal, client)
        except Exception as exc:  # never fails the upload: it stays landed and received
            log.warning("could not start %s for receipt %s: %s", receipt.dag_id, receipt.receipt_id, exc)
            self.store.save_receipt(replace(receipt, note=f"the DAG run could not be started: {exc}"))
            self.audit("dag_trigger", receipt.filename,
                       {"receipt": receipt.receipt_id, "dag_id": receipt.dag_id, "error": str(exc)},
                       center_id=receipt.center_id, principal=principal, outcome="failed", client=client)
            return receipt

    def _trigger(self, receipt: Receipt, principal: str, client: str) -> Receipt:
        conf, why_not = run_conf(receipt, self.store.landing)
        if conf is None:
            receipt = replace(receipt, note=why_not)
            self.store.save_receipt(receipt)
            return receipt
        run_id = f"upload__{receipt.receipt_id}"
        paused = self._call(lambda: self.client.request("GET", f"/api/v2/dags/{receipt.dag_id}"))
        self._call(lambda: self.client.request(
            "POST", f"/api/v2/dags/{receipt.dag_id}/dagRuns",
            json={"logical_date": None, "dag_run_id": run_id, "conf": conf,
                  "note": f"upload {receipt.receipt_id}: {receipt.filename} from {receipt.center_id}"}),
            conflict_ok=True)
        note = None
        if paused.json().get("is_paused"):
            note = f"{receipt.dag_id} is paused in Airflow: the run starts when it is unpaused"
        if receipt.filename.lower().endswith(INDEX_SUFFIXES):  # the run reads the file it indexes
            started = f"started run {run_id} of {receipt.dag_id} for the file it indexes"
            receipt = replace(receipt, note=started + (f"; {note}" if note else ""))
        else:
            receipt = replace(receipt, dag_run_id=run_id, note=note)
        self.store.save_receipt(receipt)
        self.audit("dag_trigger", receipt.filename,
                   {"receipt": receipt.receipt_id, "dag_id": receipt.dag_id, "dag_run_id": run_id,
                    "conf": conf}, center_id=receipt.center_id, principal=principal, client=client)
        return receipt

    def _call(self, send: Callable[[], httpx.Response], conflict_ok: bool = False) -> httpx.Response:
        """One REST call, tried again after a network error or a 5xx (409 is success when a
        retried trigger finds its own run already there)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                resp = send()
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise AirflowError(f"Airflow at {self.client.url} unreachable: {exc}") from None
            else:
                if resp.status_code < 400 or (conflict_ok and resp.status_code == 409):
                    return resp
                if resp.status_code < 500 or attempt == ATTEMPTS:
                    raise AirflowError(f"Airflow answered HTTP {resp.status_code} to {resp.request.method} "
                                       f"{resp.request.url.path}: {resp.text[:300]}")
            time.sleep(self.retry_wait * 3 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def run_state(self, receipt: Receipt) -> str | None:
        """The Airflow state of the receipt's run (queued, running, success, failed), or None."""
        if not receipt.dag_run_id:
            return None
        try:
            resp = self.client.request("GET", f"/api/v2/dags/{receipt.dag_id}/dagRuns/{receipt.dag_run_id}",
                                       timeout=5)
            return resp.json().get("state") if resp.status_code == 200 else None
        except (httpx.HTTPError, AirflowError) as exc:
            log.info("could not read run %s: %s", receipt.dag_run_id, exc)
            return None

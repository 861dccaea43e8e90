"""Send the demo's network feeds as centers do: HL7 v2 over MLLP, DICOM by C-STORE.

The receivers are the project's own (``connectors.mllp.MllpServer``,
``connectors.dicom_scp.StorageScp``), started in this process on 127.0.0.1 with a port the OS
picks, landing in the settings' landing zone; the senders are real clients (a TCP socket with
MLLP framing, a pynetdicom SCU). A feed is sent once: a marker under ``sent/`` records it, so
a second demo run lands nothing new (and re-sent bytes would be skipped by checksum anyway).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from omicslake.errors import OmicslakeError

SCP_AE, PACS_AE = "OMICSLAKE", "CTY-S1-PACS"


def _send_all(host: str, port: int, messages: list[str]) -> list[str]:
    """Each message framed on one connection; its ACK read back (MSA-1 of each)."""
    from connectors.mllp import END, START, frame

    codes = []
    with socket.create_connection((host, port), timeout=60) as sock:
        buffer = b""
        for text in messages:
            sock.sendall(frame(text))
            while END + b"\r" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OmicslakeError("MLLP listener closed the connection before its ACK")
                buffer += chunk
            ack, _, buffer = buffer.partition(END + b"\r")
            msa = next((s for s in ack.lstrip(START).decode().split("\r") if s.startswith("MSA|")), "MSA|?")
            codes.append(msa.split("|")[1])
    return codes


async def _mllp_session(server, messages: list[str]) -> list[str]:
    host, port = await server.start()
    serving = asyncio.create_task(server.serve_forever())
    try:
        return await asyncio.to_thread(_send_all, host, port, messages)
    finally:
        serving.cancel()
        with suppress(asyncio.CancelledError):
            await serving


def send_mllp(landing: Path, center_id: str, messages: list[str]) -> int:
    """Send ``messages`` to a loopback MLLP listener for ``center_id``; all must be ACKed AA."""
    from connectors.mllp import MllpServer

    codes = asyncio.run(_mllp_session(MllpServer(landing, center_id, "127.0.0.1", 0), messages))
    refused = [c for c in codes if c != "AA"]
    if refused:
        raise OmicslakeError(f"MLLP: {len(refused)} of {len(codes)} message(s) not accepted ({refused[:3]})")
    return len(codes)


def send_dicom(landing: Path, center_id: str, files: list[Path]) -> int:
    """C-STORE ``files`` from the PACS AE to a loopback Storage SCP for ``center_id``."""
    import pydicom
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    from connectors.dicom_scp import StorageScp

    scp = StorageScp(landing, center_id, SCP_AE, [PACS_AE])
    host, port = scp.start("127.0.0.1", 0)
    try:
        scu = AE(ae_title=PACS_AE)
        for context in (CTImageStorage, MRImageStorage):
            scu.add_requested_context(context)
        assoc = scu.associate(host, port, ae_title=SCP_AE)
        if not assoc.is_established:
            raise OmicslakeError(f"C-STORE: association with {SCP_AE} at {host}:{port} refused")
        try:
            statuses = [getattr(assoc.send_c_store(pydicom.dcmread(f)), "Status", None) for f in files]
        finally:
            assoc.release()
    finally:
        scp.stop()
    failed = [s for s in statuses if s != 0x0000]
    if failed:
        raise OmicslakeError(f"C-STORE: {len(failed)} of {len(files)} instance(s) not stored ({failed[:3]})")
    return len(files)


def once(marker: Path, send: Callable[[], int]) -> tuple[int, bool]:
    """(count, sent now): run ``send`` unless ``marker`` says it already ran, then record it."""
    if marker.exists():
        return json.loads(marker.read_text())["count"], False
    count = send()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"count": count}) + "\n")
    return count, True

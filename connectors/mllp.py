"""MLLP listener: HL7 v2 over TCP, each message on disk (fsynced) before its ACK goes out.

Framing is ``0x0B message 0x1C 0x0D``; a connection may carry many messages, and many
connections are served at once (asyncio). A message that passes the structural check (MSH with
its encoding characters, control id, a known version, a message type: ``hl7.check_header``) is
landed under ``landing/hl7/<center>/`` and acknowledged AA; one that does not is landed under
``landing/hl7-rejected/<center>/`` (nothing received is dropped) and answered AE or AR with the
reason. The full hl7apy parse runs at ingest, on every core; a message that fails it there is
quarantined with its control id.

Landing is group commit: the messages that arrive while a batch is being written go into the
next batch, one file (write to temp, fsync, rename, fsync of the folder) per batch, and each
message is ACKed once its batch is durable. So an ACKed message survives the process being
killed right after, and the fsync cost is shared by concurrent senders.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from connectors.hl7 import HL7Error, ack, check_header, read_header

START, END, CR = b"\x0b", b"\x1c", b"\x0d"
MAX_MESSAGE = 16 << 20
MAX_BATCH = 512  # messages per landed file
log = logging.getLogger(__name__)


def frame(text: str) -> bytes:
    return START + text.encode("utf-8") + END + CR


def land(folder: Path, payload: bytes, control_id: str | None, suffix: str = ".hl7") -> Path:
    """Write durably: temp file, fsync, rename into place, fsync the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c for c in (control_id or "nocid") if c.isalnum() or c in "-_.")[:64] or "nocid"
    final = folder / f"{time.time_ns()}-{safe}-{uuid.uuid4().hex[:8]}{suffix}"
    tmp = folder / f".{final.name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


@dataclass
class Stats:
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


class MllpServer:
    def __init__(self, landing: Path, center_id: str, host: str = "127.0.0.1", port: int = 2575):
        self.accepted_dir = landing / "hl7" / center_id
        self.rejected_dir = landing / "hl7-rejected" / center_id
        self.host, self.port, self.stats = host, port, Stats()
        self._server: asyncio.base_events.Server | None = None
        self._pending: asyncio.Queue | None = None
        self._committer: asyncio.Task | None = None

    def check(self, payload: bytes) -> tuple[str, str | None, HL7Error | None]:
        """The message text, its control id, and why it is refused (None: accept)."""
        text = payload.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r")
        try:
            return text, check_header(text).control_id, None
        except HL7Error as exc:
            try:
                cid = exc.control_id or read_header(text).control_id
            except HL7Error:
                cid = None
            return text, cid, exc

    async def _commit_batches(self) -> None:
        """Write what is queued as one durable file, then release every waiting sender."""
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty() and len(batch) < MAX_BATCH:
                batch.append(self._pending.get_nowait())
            body = b"\r\n".join(payload for payload, _, _ in batch) + b"\r\n"
            try:
                await asyncio.to_thread(land, self.accepted_dir, body, f"{batch[0][1]}+{len(batch) - 1}")
            except OSError as exc:
                for _, _, done in batch:
                    done.set_exception(exc)
                continue
            self.stats.accepted += len(batch)
            for _, _, done in batch:
                done.set_result(None)

    async def accept(self, payload: bytes) -> bytes:
        """The ACK for one message, once it is durable (AA) or refused (AE/AR)."""
        text, cid, refused = self.check(payload)
        if refused:
            await asyncio.to_thread(land, self.rejected_dir, payload, cid)
            self.stats.rejected += 1
            return frame(ack(text, refused.ack_code, str(refused), cid))
        done = asyncio.get_running_loop().create_future()
        await self._pending.put((payload, cid, done))
        try:
            await done
        except OSError as exc:
            return frame(ack(text, "AE", f"could not store the message: {exc}", cid))
        return frame(ack(text, "AA", control_id=cid))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    await reader.readuntil(START)
                    body = await reader.readuntil(END + CR)
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    self.stats.errors.append(f"{peer}: message over {MAX_MESSAGE} bytes")
                    break
                reply = await self.accept(body[:-2])
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()

    async def start(self) -> tuple[str, int]:
        self._pending = asyncio.Queue()
        self._committer = asyncio.create_task(self._commit_batches())
        self._server = await asyncio.start_server(self._client, self.host, self.port, limit=MAX_MESSAGE)
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        async with self._server:
            await self._server.serve_forever()

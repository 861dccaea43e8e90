"""HL7 v2: parsing real-format messages, the file ingest, and the MLLP listener over loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from connectors.hl7 import HL7Error, ack, hl7_timestamp, parse, read_header, split_messages
from connectors.mllp import END, START, frame
from jobs import ingest_hl7
from omicslake.net import free_port, wait_for_port

DATA = Path(__file__).parent / "data" / "hl7"


def test_split_handles_every_separator_and_reports_offsets():
    data = (DATA / "mixed_batch.hl7").read_bytes()
    msgs = split_messages(data)
    assert len(msgs) == 6
    for m in msgs:
        assert data[m.offset:m.offset + 3] in (b"MSH", b"thi")
    ids = [read_header(m.text).control_id for m in msgs[:5]]
    assert ids == ["ADT0001", "LAB0001", "ADT0002", "ADT0003", "ADT0004"]
    assert all("\n" not in m.text for m in msgs)


def test_parse_reads_fields_repeats_escapes_and_z_segments():
    msgs = split_messages((DATA / "mixed_batch.hl7").read_bytes())
    h, msg = parse(msgs[0].text)
    assert (h.message_type, h.trigger_event, h.version) == ("ADT", "A01", "2.5.1")
    assert h.segments[-1] == "ZPI"
    pid3 = msg.pid.pid_3
    assert [r.cx_1.value for r in pid3] == ["MRN0001", "ID3301"]  # repeated field
    assert msg.dg1.dg1_3.to_er7() == "E11.9^Type 2 diabetes mellitus without complications^I10"
    _, oru = parse(msgs[1].text)
    obx = [s for s in oru.children if s.name == "OBX"]
    assert obx[0].obx_3.ce_1.value == "4548-4" and obx[0].obx_8.value == "H"
    assert obx[2].obx_5.to_er7() == "Fasting \\S\\ verified\\E\\ok"  # escapes kept as sent
    h3, _ = parse(msgs[2].text)  # \r\n separators, no PV1, v2.3
    assert h3.version == "2.3" and "PV1" not in h3.segments
    h4, _ = parse(msgs[4].text)  # v2.1: read with hl7apy's 2.3 structures, declared version kept
    assert (h4.version, h4.control_id) == ("2.1", "ADT0004")
    with pytest.raises(HL7Error, match="version '3.0' is not supported") as err:
        parse(msgs[4].text.replace("|P|2.1", "|P|3.0"))
    assert err.value.ack_code == "AR" and err.value.control_id == "ADT0004"
    assert hl7_timestamp("20260301083000+0800").isoformat() == "2026-03-01T00:30:00"


def test_ack_echoes_control_id_and_escapes_the_error():
    text = split_messages((DATA / "oru_r01.hl7").read_bytes())[0].text
    a = ack(text, "AA")
    assert a.split("\r")[1] == "MSA|AA|LAB0001"
    e = ack(text, "AE", "bad | value")
    msa = e.split("\r")[1].split("|")
    assert msa[:3] == ["MSA", "AE", "LAB0001"] and "\\F\\" in msa[3]


def test_ingest_hl7_quarantines_bad_messages_and_is_idempotent(fresh_lake):
    spark, s = fresh_lake
    paths = [str(DATA / "mixed_batch.hl7"), str(DATA / "oru_r01.hl7")]
    r = ingest_hl7.run(spark, s, paths, "PRV-N")
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (7, 6, 1)
    rows = spark.sql("SELECT message_control_id, message_type, trigger_event, byte_offset "
                     "FROM bronze.hl7_messages ORDER BY source_uri, byte_offset").collect()
    assert [(x.message_control_id, x.trigger_event) for x in rows] == [
        ("ADT0001", "A01"), ("LAB0001", "R01"), ("ADT0002", "A08"), ("ADT0003", "A40"), ("ADT0004", "A04"),
        ("LAB0001", "R01")]
    q = spark.sql("SELECT location, reason FROM quarantine.hl7 ORDER BY location").collect()
    assert [x.location for x in q] == ["offset 1439"]
    again = ingest_hl7.run(spark, s, paths, "PRV-N")
    assert again.status == "skipped"
    assert spark.table("bronze.hl7_messages").count() == 6 and spark.table("quarantine.hl7").count() == 1


def _send(port: int, payloads: list[str]) -> list[str]:
    """One connection, many messages; returns the ACK texts."""
    acks = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        f = sock.makefile("rb")
        for p in payloads:
            sock.sendall(frame(p))
            buf = b""
            while not buf.endswith(END + b"\r"):
                chunk = f.read1(4096)
                assert chunk, "connection closed before the ACK"
                buf += chunk
            assert buf.startswith(START)
            acks.append(buf[1:-2].decode())
    return acks


def landed_messages(folder) -> list[str]:
    """Every message in the landing folder's files (a file holds one commit batch)."""
    return [m.text for p in sorted(folder.glob("*.hl7")) for m in split_messages(p.read_bytes())]


@pytest.fixture()
def mllp_server(tmp_path):
    port = free_port()
    env = {**os.environ, "OMICSLAKE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "mllp", "--port", str(port),
                             "--center", "PRV-N"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_port(port, 30)
    yield port, tmp_path / "home" / "state" / "landing", proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=20)


def test_mllp_many_clients_many_messages(mllp_server):
    port, landing, _ = mllp_server
    good = [m.text for m in split_messages((DATA / "mixed_batch.hl7").read_bytes())]
    results: dict[int, list[str]] = {}

    def client(k: int) -> None:
        payloads = [t.replace("ADT0001", f"C{k}-ADT0001").replace("LAB0001", f"C{k}-LAB0001") for t in good]
        results[k] = _send(port, payloads)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(6))
    for k, acks in results.items():
        msa = [a.split("\r")[1].split("|") for a in acks]
        assert [m[1] for m in msa] == ["AA", "AA", "AA", "AA", "AA", "AR"]
        assert msa[0][2] == f"C{k}-ADT0001" and msa[4][2] == "ADT0004"
        assert "not an HL7 v2 message" in msa[5][3]
    accepted = landed_messages(landing / "hl7" / "PRV-N")
    rejected = list((landing / "hl7-rejected" / "PRV-N").glob("*.hl7"))
    assert len(accepted) == 6 * 5 and len(rejected) == 6 * 1
    assert sum("C3-LAB0001" in m for m in accepted) == 1
    # group commit: concurrent senders share files (and fsyncs); nothing is lost or doubled
    assert len(list((landing / "hl7" / "PRV-N").glob("*.hl7"))) <= 6 * 5


def test_acked_message_survives_kill(mllp_server, fresh_lake):
    port, landing, proc = mllp_server
    text = split_messages((DATA / "oru_r01.hl7").read_bytes())[0].text.replace("LAB0001", "KILL0001")
    [a] = _send(port, [text])
    assert a.split("\r")[1] == "MSA|AA|KILL0001"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert landed_messages(landing / "hl7" / "PRV-N") == [text]
    spark, s = fresh_lake
    r = ingest_hl7.run(spark, s, [str(landing / "hl7" / "PRV-N")], "PRV-N")
    assert r.rows_accepted == 1
    assert spark.sql("SELECT message_control_id FROM bronze.hl7_messages").collect()[0][0] == "KILL0001"


def test_clinical_dag_loads_the_landing_zone(settings, tmp_path):
    """The DAG with no params picks up every center's landing folder, through dag.test()."""
    from omicslake.airflow_support import test_dag
    from omicslake.session import get_spark

    folder = settings.landing_dir / "hl7" / "CTY-S1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "one.hl7").write_bytes((DATA / "oru_r01.hl7").read_bytes())
    test_dag("omicslake_clinical", {"hl7": []}, settings)
    spark = get_spark(settings)
    got = spark.sql("SELECT center_id, message_control_id FROM bronze.hl7_messages "
                    f"WHERE source_uri LIKE '{folder}%'").collect()
    assert [(r.center_id, r.message_control_id) for r in got] == [("CTY-S1", "LAB0001")]
    silver = spark.sql("SELECT loinc_code, unit, abnormal_flag FROM silver.observations "
                       "WHERE center_id = 'CTY-S1' AND source_format = 'HL7v2' ORDER BY loinc_code").collect()
    assert [(r.loinc_code, r.unit, r.abnormal_flag) for r in silver] == [
        ("2345-7", "mmol/L", "H"), ("4548-4", "%", "H"), ("8251-1", None, None)]


def _versions() -> list[str]:
    """An LRI ORU with the truncation character (^~\\&#), a v2.2 ADT and a v2.1 ADT with AL1."""
    return [m.text for m in split_messages((DATA / "versions.hl7").read_bytes())]


def test_truncation_character_and_v21_v22_are_read_with_their_declared_version():
    lri, v22, v21 = _versions()
    h, msg = parse(lri)
    assert (h.control_id, h.version, lri.split("|")[1]) == ("LRI0001", "2.5.1", "^~\\&#")
    obx = [s for s in msg.children if s.name == "OBX"]
    assert [o.obx_3.ce_1.value for o in obx] == ["718-7", "6690-2", "8251-1"]
    h22, msg22 = parse(v22)
    assert (h22.version, h22.trigger_event) == ("2.2", "A04")
    assert msg22.pid.pid_3.to_er7() == "555444^^^OLDHOSP"
    h21, msg21 = parse(v21)  # v2.1 names the event in EVN-1 only; hl7apy's own 2.1 lacks AL1
    assert (h21.version, h21.message_type, h21.trigger_event) == ("2.1", "ADT", "A08")
    assert [s.name for s in msg21.children] == ["MSH", "EVN", "PID", "AL1"]
    six = lri.replace("^~\\&#", "^~\\&#!", 1)
    with pytest.raises(HL7Error, match="encoding chars") as err:
        parse(six)
    assert err.value.ack_code == "AE" and err.value.control_id == "LRI0001"


def test_ingest_keeps_declared_version_and_original_msh2(fresh_lake):
    spark, s = fresh_lake
    r = ingest_hl7.run(spark, s, [str(DATA / "versions.hl7")], "CTY-S1")
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (3, 3, 0)
    rows = spark.sql("SELECT message_control_id, version, trigger_event, raw FROM bronze.hl7_messages "
                     "ORDER BY byte_offset").collect()
    assert [(x.message_control_id, x.version, x.trigger_event) for x in rows] == [
        ("LRI0001", "2.5.1", "R01"), ("V22-0001", "2.2", "A04"), ("V21-0001", "2.1", "A08")]
    assert [x.raw for x in rows] == _versions()  # as sent: MSH-2 ^~\&# and MSH-12 untouched
    assert rows[0].raw.startswith("MSH|^~\\&#|LAB-SYS^")
    assert ingest_hl7.run(spark, s, [str(DATA / "versions.hl7")], "CTY-S1").status == "skipped"
    assert spark.table("bronze.hl7_messages").count() == 3 and spark.table("quarantine.hl7").count() == 0


def test_mllp_acks_aa_for_truncation_character_and_old_versions(mllp_server):
    port, landing, _ = mllp_server
    sent = _versions()
    acks = _send(port, sent)
    msa = [a.split("\r")[1].split("|") for a in acks]
    assert [(m[1], m[2]) for m in msa] == [("AA", "LRI0001"), ("AA", "V22-0001"), ("AA", "V21-0001")]
    assert [a.split("\r")[0].split("|")[11] for a in acks] == ["2.5.1", "2.2", "2.1"]
    assert sorted(landed_messages(landing / "hl7" / "PRV-N")) == sorted(sent)
    assert not list((landing / "hl7-rejected").glob("*/*.hl7"))


def test_mllp_acks_after_the_structural_check_and_ingest_quarantines_the_rest(mllp_server, fresh_lake):
    """MSH is sound, so the listener stores and ACKs it; hl7apy refuses the body at ingest,
    where it lands in quarantine with its control id (README: which errors come back as AE/AR)."""
    port, landing, _ = mllp_server
    bad_body = "MSH|^~\\&|LIS|CTY-S1|LAKE|NAT|20250101||ORU^R01|LATE0001|P|2.5.1\rPID|1||123\rABC|x\r"
    no_version = "MSH|^~\\&|LIS|CTY-S1|LAKE|NAT|20250101||ORU^R01|EARLY0001|P|\rPID|1||123"
    acks = _send(port, [bad_body, no_version])
    assert [a.split("\r")[1].split("|")[1:3] for a in acks] == [["AA", "LATE0001"], ["AR", "EARLY0001"]]
    spark, s = fresh_lake
    r = ingest_hl7.run(spark, s, [str(landing / "hl7" / "PRV-N")], "PRV-N")
    assert (r.rows_accepted, r.rows_quarantined) == (0, 1)
    q = spark.read.format("delta").load(f"{s.lake_root}/quarantine/hl7").collect()
    assert len(q) == 1 and "LATE0001" in q[0].location and "Invalid name for Segment: ABC" in q[0].reason

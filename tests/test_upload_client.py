"""`omicslake upload` against the real center API on loopback: several files of two feeds,
a connection cut mid-file (resumed from the server's offset in the same run), a last answer
lost (found by its receipt), a client killed mid-file (resumed by running the same command
again), refusals with the server's reason, missing settings, and `upload status`."""

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from inputs import hl7_message
from lakes import own_lake

from omicslake.net import free_port, wait_for_port

pytestmark = pytest.mark.slow
MAX_BYTES = 64 * 2**20


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One lake and one `omicslake api` process for the module; tokens issued in this process."""
    from omicslake.credentials import issue

    root = tmp_path_factory.mktemp("upload-client")
    with own_lake(root / "home") as (spark, settings):
        tokens = {"county": issue(spark, settings, "CNT-S1A", "uploader").token,
                  "other": issue(spark, settings, "CNT-S2A", "uploader").token}
        _TOKENS.extend(tokens.values())
        api_port = free_port()
        log = root / "api.log"
        env = {**os.environ, "OMICSLAKE_UPLOAD_MAX_BYTES": str(MAX_BYTES)}
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "api", "--port", str(api_port)],
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(api_port, timeout=120)
            yield {"port": api_port, "tokens": tokens, "settings": settings, "log": log, "root": root}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert not any(t in text for t in tokens.values()), "a token reached the API log"


class CutProxy:
    """A TCP proxy on loopback in front of the API that counts the bytes reaching the server.
    Once, after ``cut_after`` client-to-server bytes, it drops the connection (``stall=False``)
    or holds it, forwarding nothing more, until ``release`` is set (``stall=True``); later
    connections pass straight through. With ``lose_answer`` it instead drops, once, the
    connection whose answer from the server holds those bytes, before the client sees it."""

    def __init__(self, target: int, cut_after: int | None = None, stall: bool = False,
                 lose_answer: bytes | None = None):
        self.target, self.cut_after, self.stall, self.lose_answer = target, cut_after, stall, lose_answer
        self.upstream = 0
        self.tripped, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(conn, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        try:
            while data := src.recv(65536):
                trip = False
                if to_server:
                    with self._lock:
                        if self.cut_after is not None and not self.tripped.is_set() \
                                and self.upstream + len(data) >= self.cut_after:
                            data, trip = data[:self.cut_after - self.upstream], True
                            self.tripped.set()
                        self.upstream += len(data)
                elif self.lose_answer and not self.tripped.is_set() and self.lose_answer in data.lower():
                    self.tripped.set()
                    break
                dst.sendall(data)
                if trip:
                    if self.stall:
                        self.release.wait(120)
                    break
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.release.set()
        self._server.close()


_TOKENS: list[str] = []  # every token issued here: none may appear in any output


def _env(api, port: int | None = None, token: str | None = "county", **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMICSLAKE_API", "OMICSLAKE_TOKEN")}
    env["OMICSLAKE_API"] = f"http://127.0.0.1:{port or api['port']}"
    env["OMICSLAKE_UPLOAD_STATE"] = str(api["root"] / "client-state.json")
    if token:
        env["OMICSLAKE_TOKEN"] = api["tokens"][token]
    return {**env, **extra}


def _run(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "omicslake.cli", *args], env=env, capture_output=True,
                       text=True, timeout=timeout)
    for token in _TOKENS:
        assert token not in p.stdout and token not in p.stderr, "a token reached the client's output"
    return p


def _landed(api, feed: str, name: str) -> list[Path]:
    return sorted((Path(api["settings"].landing_dir) / feed / "CNT-S1A").glob(f"*/{name}"))


def _state(api) -> dict:
    path = api["root"] / "client-state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _files(folder: Path, sizes: dict[str, int]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, size in sizes.items():
        out[name] = folder / name
        out[name].write_bytes(os.urandom(size))
    return out


def test_several_files_of_two_feeds_land_with_receipts_and_status(api, tmp_path):
    hl7 = {}
    for i in range(3):
        hl7[i] = tmp_path / f"batch{i}.hl7"
        hl7[i].write_bytes(b"".join(hl7_message(f"UPC{i}{k:04d}") for k in range(20 * (i + 1))))
    vcf = _files(tmp_path / "vcf", {"a.vcf": 2_500_000, "b.vcf": 1_048_576, "c.vcf": 777})
    (tmp_path / "vcf" / "empty.vcf").write_bytes(b"")
    vcf["empty.vcf"] = tmp_path / "vcf" / "empty.vcf"

    got = _run(_env(api), "upload", "--center", "CNT-S1A", "--feed", "hl7", *map(str, hl7.values()))
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("r-") for line in lines)
    assert {line.split()[-1] for line in lines} == {str(p) for p in hl7.values()}

    got = _run(_env(api), "upload", "--feed", "vcf", "--json", "--chunk-mib", "1", "--parallel", "2",
               *map(str, vcf.values()))
    assert got.returncode == 0, got.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, got.stdout.splitlines())}
    assert set(rows) == set(vcf)
    for name, path in vcf.items():
        r = rows[name]
        data = path.read_bytes()
        assert r["status"] == "ok" and r["receipt"].startswith("r-") and r["error"] is None
        assert r["sha256"] == hashlib.sha256(data).hexdigest() and r["size"] == len(data)
        assert r["sent"] == len(data) and r["resumed_from"] is None and r["resumes"] == []
        [landed] = _landed(api, "vcf", name)
        assert landed.read_bytes() == data
    for path in hl7.values():
        [landed] = _landed(api, "hl7", path.name)
        assert landed.read_bytes() == path.read_bytes()
    assert _state(api) == {}  # finished uploads leave nothing to resume

    receipt = rows["a.vcf"]["receipt"]
    status = _run(_env(api), "upload", "status", receipt)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"{receipt}  received"
    assert "a.vcf (vcf, CNT-S1A)" in status.stdout and rows["a.vcf"]["sha256"] in status.stdout
    as_json = json.loads(_run(_env(api), "upload", "status", receipt, "--json").stdout)
    assert as_json["status"] == "received" and as_json["size"] == 2_500_000
    assert as_json["dag_id"] == "omicslake_genomics"
    other = _run(_env(api, token="other"), "upload", "status", receipt)
    assert other.returncode != 0 and "cannot see receipts of CNT-S1A" in other.stderr
    missing = _run(_env(api), "upload", "status", "r-" + "0" * 32)
    assert missing.returncode != 0 and "no receipt" in missing.stderr


def test_a_cut_connection_resumes_from_the_servers_offset(api, tmp_path):
    size = 5 * 2**20 + 12345
    [path] = _files(tmp_path, {"cut.vcf": size}).values()
    proxy = CutProxy(api["port"], cut_after=int(size * 0.55))
    try:
        got = _run(_env(api, proxy.port), "upload", "--feed", "vcf", "--json", "--chunk-mib", "1", str(path))
    finally:
        proxy.close()
    assert got.returncode == 0, got.stderr
    assert proxy.tripped.is_set()
    [r] = map(json.loads, got.stdout.splitlines())
    assert r["status"] == "ok", r
    # it went on from what the server had, a little under the cut, not from 0
    assert r["resumes"] and 0.5 * size < r["resumes"][0] <= 0.55 * size
    assert "asking the server where to go on" in got.stderr
    # every byte reached the server once: the file plus a few hundred bytes of headers per request
    assert size <= proxy.upstream < size + 40_000
    [landed] = _landed(api, "vcf", "cut.vcf")
    assert landed.read_bytes() == path.read_bytes()


def test_a_lost_last_answer_is_found_by_its_receipt_not_sent_again(api, tmp_path):
    size = 2 * 2**20 + 99
    [path] = _files(tmp_path, {"lost.vcf": size}).values()
    proxy = CutProxy(api["port"], lose_answer=b"omicslake-receipt")
    try:
        got = _run(_env(api, proxy.port), "upload", "--feed", "vcf", "--json", "--chunk-mib", "1", str(path))
    finally:
        proxy.close()
    assert got.returncode == 0, got.stderr
    assert proxy.tripped.is_set()
    [r] = map(json.loads, got.stdout.splitlines())
    assert r["status"] == "ok" and r["sent"] == size and r["resumes"] == []  # nothing sent twice
    assert "asking the server where to go on" in got.stderr
    [landed] = _landed(api, "vcf", "lost.vcf")
    assert landed.read_bytes() == path.read_bytes()
    receipts = Path(api["settings"].state_dir) / "uploads" / "receipts"
    receipt = json.loads((receipts / f"{r['receipt']}.json").read_text())
    assert receipt["path"] == str(landed)


def test_a_killed_client_resumes_when_the_command_runs_again(api, tmp_path):
    size = 6 * 2**20 + 4321
    [path] = _files(tmp_path, {"killed.vcf": size}).values()
    proxy = CutProxy(api["port"], cut_after=int(size * 0.4), stall=True)
    env = _env(api, proxy.port)
    cmd = [sys.executable, "-m", "omicslake.cli", "upload", "--feed", "vcf", "--json", "--chunk-mib", "1",
           str(path)]
    try:
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proxy.tripped.wait(60), "the client never got that far"
        first.kill()
        out, err = first.communicate(timeout=30)
        assert first.returncode != 0 and not out.strip()
        proxy.release.set()  # the stalled connection closes: the server keeps what arrived

        [entry] = _state(api).values()
        assert entry["path"] == str(path) and entry["size"] == size and "token" not in json.dumps(entry)
        headers = {"Authorization": f"Bearer {api['tokens']['county']}", "Tus-Resumable": "1.0.0"}
        offsets = []
        for _ in range(50):  # until the server has written all that arrived
            offsets.append(int(httpx.head(entry["url"], headers=headers).headers["Upload-Offset"]))
            if len(offsets) > 2 and offsets[-1] == offsets[-3]:
                break
            threading.Event().wait(0.1)
        offset = offsets[-1]
        assert 0.3 * size < offset <= 0.4 * size

        before = proxy.upstream
        again = _run(env, "upload", "--feed", "vcf", "--json", "--chunk-mib", "1", str(path))
    finally:
        proxy.close()
    assert again.returncode == 0, again.stderr
    [r] = map(json.loads, again.stdout.splitlines())
    assert r["status"] == "ok" and r["resumed_from"] == offset and r["sent"] == size - offset
    assert proxy.upstream - before < size - offset + 20_000  # only the rest crossed the wire
    assert f"going on from {offset} bytes the server has" in again.stderr
    [landed] = _landed(api, "vcf", "killed.vcf")
    assert landed.read_bytes() == path.read_bytes()
    assert _state(api) == {}


def test_refusals_report_the_servers_reason_and_exit_non_zero_after_trying_all(api, tmp_path):
    good = tmp_path / "good.hl7"
    good.write_bytes(hl7_message("UPR0001"))
    bad = tmp_path / "bad name.hl7"
    bad.write_bytes(hl7_message("UPR0002"))

    wrong_feed = _run(_env(api), "upload", "--feed", "pdf", str(good), str(tmp_path / "absent.hl7"))
    assert wrong_feed.returncode == 1 and not wrong_feed.stdout
    assert "unknown feed 'pdf'" in wrong_feed.stderr and "(HTTP 400)" in wrong_feed.stderr
    assert "absent.hl7" in wrong_feed.stderr and "2 of 2 file(s) failed" in wrong_feed.stderr

    mixed = _run(_env(api), "upload", "--feed", "hl7", "--json", str(bad), str(good))
    assert mixed.returncode == 1
    rows = {Path(r["path"]).name: r for r in map(json.loads, mixed.stdout.splitlines())}
    assert rows["good.hl7"]["status"] == "ok"
    assert rows["bad name.hl7"]["status"] == "failed" and rows["bad name.hl7"]["http_status"] == 400
    assert "no folders" in rows["bad name.hl7"]["error"]
    assert len(_landed(api, "hl7", "good.hl7")) == 1

    other_center = _run(_env(api), "upload", "--center", "CNT-S2A", "--feed", "hl7", str(good))
    assert other_center.returncode == 1 and "cannot upload for center CNT-S2A" in other_center.stderr
    bad_token = _run(_env(api, token=None, OMICSLAKE_TOKEN="olk_000000000000_" + "x" * 43),
                     "upload", "--feed", "hl7", str(good))
    assert bad_token.returncode == 1 and "invalid or missing token (HTTP 401)" in bad_token.stderr
    assert "x" * 43 not in bad_token.stderr
    assert _state(api) == {}


def test_missing_settings_are_clear_errors(tmp_path):
    f = tmp_path / "x.hl7"
    f.write_bytes(b"MSH|^~\\&|X\r")
    token = "olk_000000000000_" + "s" * 43
    _TOKENS.append(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMICSLAKE_")}
    env["OMICSLAKE_UPLOAD_STATE"] = str(tmp_path / "state.json")
    no_token = _run({**env, "OMICSLAKE_API": "http://127.0.0.1:9"}, "upload", "--feed", "hl7", str(f))
    assert no_token.returncode == 2 and "OMICSLAKE_TOKEN is not set" in no_token.stderr
    no_api = _run({**env, "OMICSLAKE_TOKEN": token}, "upload", "status", "r-" + "0" * 32)
    assert no_api.returncode == 2 and "OMICSLAKE_API is not set" in no_api.stderr
    not_http = _run({**env, "OMICSLAKE_API": "ftp://lake", "OMICSLAKE_TOKEN": token},
                    "upload", "--feed", "hl7", str(f))
    assert not_http.returncode == 2 and "is not an http:// or https:// address" in not_http.stderr
    down = _run({**env, "OMICSLAKE_API": f"http://127.0.0.1:{free_port()}", "OMICSLAKE_TOKEN": token},
                "upload", "--feed", "hl7", "--retries", "1", str(f))
    assert down.returncode == 1 and "x.hl7: create: gave up after 1 retries: ConnectError" in down.stderr
    assert not (tmp_path / "state.json").exists() or json.loads((tmp_path / "state.json").read_text()) == {}

"""The ``omicslake`` command line."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager, suppress

import click

from omicslake.errors import InputError, OmicslakeError
from omicslake.settings import load_settings

SETTINGS_HELP = """
\b
Settings (environment variables):
  OMICSLAKE_HOME    storage root: a folder or s3://bucket/prefix, hdfs://nn/path
                    (default ./.omicslake); tables live under HOME/lake
  OMICSLAKE_ENGINE  local (embedded Sail, default) | remote | classic (JVM Spark + delta-spark)
  SPARK_REMOTE      sc://host:port, for OMICSLAKE_ENGINE=remote
  OMICSLAKE_CENTERS the center registry, a YAML file (default: the demo network's,
                    omicslake/centers.demo.yaml); see `omicslake centers --help`
  OMICSLAKE_COHORTS cohort definitions folder (default: the repository's cohorts/)
  OMICSLAKE_LOG_LEVEL  engine logs on the console at this level (error|warn|info|debug);
                    unset: they go to STATE/logs/engine.log
"""


def _err(msg: str) -> None:
    click.secho(f"error: {msg}", fg="red", err=True)


@contextmanager
def _status(text: str):
    """Progress on stderr so stdout stays clean for --json and pipes."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal:
        with console.status(text):
            yield
    else:
        click.echo(f"... {text}", err=True)
        yield


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OmicslakeError as exc:
            _err(str(exc))
            sys.exit(2)


@click.group(cls=_Group, epilog=SETTINGS_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Log engine and job details.")
@click.version_option(package_name="omicslake")
def main(verbose: bool) -> None:
    """omicslake: omics data lake of genomics, imaging and clinical feeds on Delta Lake.

    Query every table in Spark SQL as layer.table (bronze, silver, gold, quarantine, ops).
    Engine logs go to STATE/logs/engine.log (-v or OMICSLAKE_LOG_LEVEL=warn|info|debug: console).
    """
    from omicslake.console import route_engine_logs

    with suppress(OmicslakeError):  # a bad setting is reported by the command that reads it
        route_engine_logs(load_settings().state_dir, verbose)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _known_center(_ctx, _param, value: str | None) -> str | None:
    """--center must name a center of the registry: refused before any engine starts."""
    from omicslake.tiers import require_center

    if value is not None:
        require_center(load_settings(), value)
    return value


def _spark(settings):
    from omicslake.session import get_spark

    with _status(f"starting the {settings.engine} engine"):
        return get_spark(settings)


def _report(result, table: str | None = None) -> None:
    """The run's summary, then one line per quarantined input in ``table``: bad input is
    explained, not traced."""
    click.echo(result.summary())
    if table is None:
        return
    lines = result.details.get("rejected") or []
    for line in lines:
        click.echo(f"quarantined: {line}", err=True)
    if result.rows_quarantined > len(lines):
        click.echo(f"... {result.rows_quarantined - len(lines)} more in {table}", err=True)


def _step(spark, settings, job: str, label: str, quarantine: str | None = None, **params):
    """Run one pipeline step (``jobs.<job>``) with a progress line, then print its summary (and
    what ``quarantine`` received); the result is for the command's own lines."""
    from omicslake.pipelines import run_step

    with _status(label):
        result = run_step(spark, settings, job, **params)
    _report(result, quarantine)
    return result


def _run_job(job: str, label: str, quarantine: str | None = None, **params):
    """A job command: the settings, the engine, one step (``_step``)."""
    settings = load_settings()
    return _step(_spark(settings), settings, job, label, quarantine, **params)


def _echo_check(gate: str, summary: dict) -> None:
    click.echo(json.dumps({"gate": gate, **summary}))


_CHECK_HELP = "Then validate the tables of this pipeline's quality gates, as its DAG does."


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per center.")
@click.pass_context
def centers(ctx, as_json: bool) -> None:
    """List the network of centers from the registry (OMICSLAKE_CENTERS).

    \b
    The registry is a YAML file with a list under `centers:`, one mapping per center:
      center_id  unique: letters, digits, '-', '_', '.'
      name       display name
      tier       national | provincial | city | county
      parent_id  the center exactly one tier up (none for the one national root)
      region     free text
    It is checked when read (an error names the line at fault). Every ingest command,
    listener and upload refuses a center it does not list. The genomics DAG copies it into
    ops.centers (jobs/register_centers.py) for SQL joins.
    """
    if ctx.invoked_subcommand:
        return
    from omicslake.tiers import registry

    settings = load_settings()
    network = registry(settings)
    if as_json:
        for _, c in network.tree():
            click.echo(json.dumps(c.__dict__))
        return
    click.echo(f"{len(network.centers)} centers in {settings.centers_file}")
    for depth, c in network.tree():
        region = f"  [{c.region}]" if c.region else ""
        click.echo(f"{'  ' * depth}{c.center_id:<{14 - 2 * depth}} {c.tier:<10} {c.name}{region}")


@centers.group()
def token() -> None:
    """API tokens: a principal is a center and a role (uploader, analyst or admin).

    \b
    A token is shown once, when issued; the lake keeps only its argon2id hash
    (ops.credentials). Tokens expire (--days) and can be revoked. Clients send it as
    `Authorization: Bearer <token>` (OMICSLAKE_TOKEN for `omicslake upload`).
    """


@token.command("issue")
@click.argument("center_id", callback=_known_center)
@click.option("--role", type=click.Choice(["uploader", "analyst", "admin"]), required=True)
@click.option("--days", default=90, show_default=True, help="Days until it expires.")
def token_issue(center_id: str, role: str, days: int) -> None:
    """Issue a token for CENTER_ID; it is printed once, on stdout."""
    from omicslake.credentials import issue

    settings = load_settings()
    issued = issue(_spark(settings), settings, center_id, role, days)
    click.echo(f"token {issued.token_id} for {center_id}:{role}, expires "
               f"{issued.expires_at:%Y-%m-%d %H:%M} UTC (shown once: store it now)", err=True)
    click.echo(issued.token)


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke the token with this id (the part after olk_, as `token list` shows it)."""
    from omicslake.credentials import revoke

    settings = load_settings()
    if not revoke(_spark(settings), settings, token_id):
        raise OmicslakeError(f"no live token {token_id!r}: `omicslake centers token list` shows them")
    click.echo(f"revoked {token_id}")


@token.command("list")
@click.argument("center_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token.")
def token_list(center_id: str | None, as_json: bool) -> None:
    """List tokens (all, or CENTER_ID's): id, principal, issued, expires, revoked. Never secrets."""
    from omicslake.credentials import tokens

    settings = load_settings()
    for t in tokens(_spark(settings), settings, center_id):
        if as_json:
            click.echo(json.dumps(t, default=str))
        else:
            state = "revoked" if t["revoked_at"] else "live"
            click.echo(f"{t['token_id']}  {t['center_id']}:{t['role']:<8} issued {t['issued_at']:%Y-%m-%d} "
                       f"expires {t['expires_at']:%Y-%m-%d}  {state}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table.")
def tables(as_json: bool) -> None:
    """List every table: layer, row count, Delta version and location.

    The location works in any Spark SQL client as delta.`LOCATION`.
    """
    from omicslake.catalog import lake_tables
    from omicslake.delta_ops import adapter

    settings = load_settings()
    every = lake_tables(settings)
    spark = None
    if settings.engine != "local":
        spark = _spark(settings)
    else:  # make sure every table exists; delta-rs then reads the logs without an engine
        from omicslake.catalog import _exists, table_uri

        if not all(_exists(None, settings, table_uri(settings, t)) for t in every):
            spark = _spark(settings)
    ad = adapter(settings, spark)
    infos = [ad.info(t.full_name) for t in every]
    if as_json:
        for i in infos:
            click.echo(json.dumps(i.__dict__))
        return
    from rich.console import Console
    from rich.table import Table as RTable

    t = RTable(title=f"omicslake tables ({settings.lake_root})")
    for c in ("table", "layer", "rows", "version", "files", "partitioned by", "location"):
        t.add_column(c, justify="right" if c in ("rows", "version", "files") else "left")
    for i in infos:
        t.add_row(i.name, i.layer, str(i.rows), str(i.version), str(i.files),
                  ",".join(i.partition_by), i.location)
    Console(width=200, emoji=False, markup=False, highlight=False).print(t)


@main.command()
@click.argument("query")
@click.option("--as", "as_principal", metavar="CENTER[:ROLE]",
              help="Run as this center's analyst (or admin): only rows of its subtree. "
                   "Default: the national center's admin (the operator).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per row.")
@click.option("--limit", default=1000, show_default=True, help="Most rows to print.")
def sql(query: str, as_principal: str | None, as_json: bool, limit: int) -> None:
    """Run one Spark SQL SELECT over the lake's tables (layer.table names).

    \b
    Every query goes through the gateway (omicslake/sql_gateway.py): one SELECT over
    registered layer.table names; no paths (delta.`...`), file-reading functions, DDL/DML or
    second statements. With --as, each table is cut to the rows of that center and the
    centers below it, and bronze, quarantine and ops need the admin role. Every query and
    every refusal is written to ops.audit_log.
    \b
    Examples:
      omicslake sql "SELECT contig, count(*) FROM silver.variants GROUP BY contig"
      omicslake sql --as CNT-S1A "SELECT count(*) FROM silver.genotypes"
    """
    from omicslake.audit import audit
    from omicslake.sql_gateway import Principal, QueryRefused, scope_query
    from omicslake.tiers import registry

    settings = load_settings()
    network = registry(settings)
    principal = Principal.parse(as_principal) if as_principal else \
        Principal(next(c for c in network.centers.values() if c.parent_id is None).center_id, "admin")
    spark = _spark(settings)
    try:
        scoped = scope_query(query, principal, network)
    except QueryRefused as exc:
        audit(spark, settings, "query", "sql", {"query": query, "reason": str(exc)},
              principal.center_id, principal=str(principal), outcome="refused")
        raise
    try:
        df = spark.sql(scoped.sql)
        rows = df.limit(limit).collect()
    except Exception as exc:
        audit(spark, settings, "query", ",".join(scoped.tables), {"query": query},
              principal.center_id, principal=str(principal), outcome="failed")
        raise OmicslakeError(f"query failed: {str(exc).splitlines()[0]}") from exc
    audit(spark, settings, "query", ",".join(scoped.tables), {"query": query, "rows": len(rows)},
          principal.center_id, principal=str(principal))
    if as_json:
        for r in rows:
            click.echo(json.dumps(r.asDict(recursive=True), default=str))
        return
    from rich.console import Console
    from rich.table import Table as RTable

    t = RTable()
    for name in df.columns:
        t.add_column(name)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    Console(width=200, emoji=False, markup=False, highlight=False).print(t)
    click.echo(f"{len(rows)} row(s)", err=True)


@main.command()
@click.argument("table")
@click.option("--limit", type=int, help="Most recent versions only.")
@click.option("--json", "as_json", is_flag=True)
def history(table: str, limit: int | None, as_json: bool) -> None:
    """Show the Delta history of TABLE (layer.table): version, time, operation, metrics."""
    from omicslake.delta_ops import adapter
    from schemas import get_table

    try:
        get_table(table)
    except KeyError as exc:
        raise OmicslakeError(str(exc.args[0])) from None
    settings = load_settings()
    ad = adapter(settings, None if settings.engine == "local" else _spark(settings))
    entries = ad.history(table, limit)
    for h in entries:
        if as_json:
            click.echo(json.dumps(h, default=str))
        else:
            click.echo(f"v{h['version']:<4} {h['timestamp']}  {h['operation']:<14} {h['metrics']}")


@main.command("audit")
@click.option("--since", help="Only events at or after this time (ISO 8601, UTC), e.g. 2026-11-01.")
@click.option("--center", "center_id", help="Only events of this center.")
@click.option("--action", help="Only this action (query, job, token_issue, token_revoke).")
@click.option("--limit", default=200, show_default=True, help="Most events to print, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
def audit_cmd(since: str | None, center_id: str | None, action: str | None, limit: int,
              as_json: bool) -> None:
    """Show ops.audit_log: who did what, when, from where, and the outcome."""
    from datetime import datetime

    from pyspark.sql import functions as F

    from omicslake.catalog import read_table

    settings = load_settings()
    df = read_table(_spark(settings), settings, "ops.audit_log")
    if since:
        try:
            at = datetime.fromisoformat(since)
        except ValueError:
            raise OmicslakeError(f"--since {since!r}: not an ISO 8601 date or time") from None
        df = df.where(F.col("at") >= F.lit(at.replace(tzinfo=None)))
    if center_id:
        df = df.where(F.col("center_id") == center_id)
    if action:
        df = df.where(F.col("action") == action)
    rows = df.orderBy(F.col("at").desc()).limit(limit).collect()
    for r in rows:
        if as_json:
            click.echo(json.dumps(r.asDict(), default=str))
        else:
            click.echo(f"{r.at:%Y-%m-%d %H:%M:%S}  {r.principal:<18} {r.center_id or '-':<8} "
                       f"{r.action:<14} {r.outcome or '-':<8} {r.client or '-':<15} {r.target}  "
                       f"{r.details_json}")
    click.echo(f"{len(rows)} event(s)", err=True)


@main.command()
@click.option("--port", default=8750, show_default=True, help="TCP port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all).")
def api(port: int, host: str) -> None:
    """Serve the center API over HTTP: tus uploads, receipts and scoped SQL (OpenAPI at /docs).

    \b
    Routes (each needs Authorization: Bearer <token> from `omicslake centers token issue`):
      OPTIONS/POST /uploads, HEAD/PATCH/DELETE /uploads/{id}   tus 1.0 resumable uploads
      GET  /receipts/{id}   received, ingesting, landed, quarantined or failed, with counts
      POST /sql             {"query": ..., "format": "json"|"arrow"}, cut to your subtree
    Completed uploads land in STATE/landing/<feed>/<center>/<date>/, where the DAGs read.
    With OMICSLAKE_AIRFLOW_URL set (see `omicslake airflow up`), each one also starts the DAG
    run that ingests it, and its receipt says `ingesting` until the run has read it.
    OMICSLAKE_UPLOAD_MAX_BYTES caps one upload (default 64 GiB). Put TLS in front (a reverse
    proxy) anywhere but loopback: tokens travel in a header.
    """
    import uvicorn

    from connectors.upload_api import create_app

    settings = load_settings()
    app = create_app(_spark(settings), settings)
    click.echo(f"omicslake API on http://{host}:{port} (OpenAPI at /docs); landing in {settings.landing_dir}")
    sys.stdout.flush()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class _DefaultGroup(click.Group):
    """`omicslake upload FILES...` runs the hidden `send` command; `upload status ID` its own."""

    def parse_args(self, ctx, args):
        if not args or args[0] not in self.commands:
            args = ["send", *args]
        return super().parse_args(ctx, args)


class _DefaultCommand(click.Command):
    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.parent.command_path, " ".join(self.collect_usage_pieces(ctx)))


@main.group("upload", cls=_DefaultGroup)
def upload() -> None:
    """Send files to the center API (resumable), or see where an upload stands."""


@upload.command("send", cls=_DefaultCommand, hidden=True)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--feed", required=True, help="vcf, bam, dicom, hl7, fhir or manifest (the server decides).")
@click.option("--center", "center_id", help="Your center (default: the token's own center).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout.")
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Files sent at the same time.")
@click.option("--chunk-mib", default=8, show_default=True, type=click.IntRange(1, 1024),
              help="MiB per PATCH request.")
@click.option("--retries", default=8, show_default=True, type=click.IntRange(0, 100),
              help="Retries in a row (network errors, 5xx) before a file fails.")
def upload_send(files, feed: str, center_id: str | None, as_json: bool, parallel: int, chunk_mib: int,
                retries: int) -> None:
    """Upload FILES for one feed to the center API (tus 1.0, resumable).

    \b
    Settings (environment variables):
      OMICSLAKE_API           the API's address, e.g. https://lake.example.org
      OMICSLAKE_TOKEN         an uploader token (`omicslake centers token issue C --role uploader`)
      OMICSLAKE_UPLOAD_STATE  the file that remembers unfinished uploads
                              (default ~/.omicslake-state/uploads.json)
    Each file is checksummed (sha256), then sent in chunks. A dropped connection or a 5xx is
    retried with backoff from the offset the server reports; re-running the same command
    after a crash resumes where the server stopped. A refusal (4xx) stops that file with the
    server's reason. Prints one line per file with its receipt id (see `omicslake upload
    status RECEIPT`); exits 1 if any file failed, after trying them all.
    """
    from rich.console import Console

    from connectors.upload_client import (
        PlainReporter,
        ResumeState,
        RichReporter,
        default_state_file,
        endpoint_from_env,
        upload_files,
    )

    endpoint = endpoint_from_env()
    if endpoint.cleartext:
        click.secho(f"warning: {endpoint.api} is plain http: the token crosses the network in clear",
                    fg="yellow", err=True)
    if Console(stderr=True).is_terminal:
        sizes = [os.path.getsize(f) for f in files if os.path.isfile(f)]
        reporter = RichReporter(sum(sizes), len(files))
    else:
        reporter = PlainReporter(lambda m: click.echo(m, err=True))

    def done(o) -> None:
        if as_json:
            click.echo(json.dumps(o.as_json()))
        elif o.ok:
            click.echo(f"{o.receipt}  {o.feed}  {o.size}  {o.path}")
        if not o.ok:
            reporter.log(f"error: {o.path}: {o.error}")

    try:
        outcomes = upload_files(endpoint, feed, list(files), center_id, parallel=parallel,
                                chunk_size=chunk_mib << 20, retries=retries,
                                state=ResumeState(default_state_file()), reporter=reporter, on_done=done)
    except KeyboardInterrupt:
        reporter.close()
        _err("interrupted: run the same command again to resume")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # not waiting for requests in flight: what the server has, it keeps
    reporter.close()
    failed = sum(not o.ok for o in outcomes)
    if failed:
        _err(f"{failed} of {len(outcomes)} file(s) failed")
        sys.exit(1)


@upload.command("status")
@click.argument("receipt_id")
@click.option("--json", "as_json", is_flag=True, help="The receipt as one JSON object.")
def upload_status(receipt_id: str, as_json: bool) -> None:
    """Where an upload stands: received, ingesting, landed, quarantined or failed (with counts)."""
    from connectors.upload_client import UploadClient, describe_receipt, endpoint_from_env

    with UploadClient(endpoint_from_env(), feed="", retries=2) as client:
        receipt = client.receipt(receipt_id)
    if as_json:
        click.echo(json.dumps(receipt, default=str))
        return
    for line in describe_receipt(receipt):
        click.echo(line)


@main.group("airflow")
def airflow_group() -> None:
    """Run the DAGs on a local Airflow 3: api-server, scheduler, dag-processor and triggerer.

    \b
    The stack listens on 127.0.0.1 only, uses the SQLite metadata DB in STATE/airflow and the
    LocalExecutor, and lets every local client in as admin (SimpleAuthManager, all admins):
    GET /auth/token gives a JWT for the REST API (/api/v2). Logs: STATE/airflow/logs/.
    """


@airflow_group.command("up")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="api-server port on 127.0.0.1 (0 = any free port).")
@click.option("--parallelism", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Tasks running at once (each starts its own engine).")
@click.option("--timeout", default=240, show_default=True, type=click.IntRange(10, 3600),
              help="Seconds to wait for the stack and the DAGs.")
def airflow_up(port: int, parallelism: int, timeout: int) -> None:
    """Start Airflow in the background; return once the DAGs are parsed (prints the URL)."""
    from omicslake.airflow_local import start

    settings = load_settings()
    t0 = time.perf_counter()
    with _status("starting Airflow (api-server, scheduler, dag-processor, triggerer)"):
        state = start(settings, port=port, parallelism=parallelism, timeout=timeout,
                      echo=lambda m: click.echo(f"... {m}", err=True))
    if state.get("already_running"):
        click.echo(f"Airflow is already running at {state['url']} (since {state['started_at']})", err=True)
    else:
        click.echo(f"Airflow is up in {time.perf_counter() - t0:.0f} s: LocalExecutor, parallelism "
                   f"{state['parallelism']}; logs in {state['airflow_home']}/logs", err=True)
    click.echo(state["url"])


@airflow_group.command("down")
@click.option("--timeout", default=30, show_default=True, type=click.IntRange(0, 3600),
              help="Seconds between SIGTERM and SIGKILL.")
def airflow_down(timeout: int) -> None:
    """Stop the stack `airflow up` started (SIGTERM, then SIGKILL after --timeout)."""
    from omicslake.airflow_local import stop

    stopped = stop(load_settings(), timeout=timeout, echo=lambda m: click.echo(m, err=True))
    if stopped is None:
        click.echo("Airflow was not running")
    elif not stopped:
        click.echo("no component was still running; removed the stale record")
    else:
        click.echo(f"stopped {', '.join(stopped)}")


@airflow_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def airflow_status(as_json: bool) -> None:
    """Which components run, their heartbeats, and the DAGs (paused or not). Exit 1 if down."""
    from omicslake.airflow_local import status

    info = status(load_settings())
    if as_json:
        click.echo(json.dumps(info, default=str))
    elif "components" not in info:
        click.echo(f"Airflow is not running (home {info['airflow_home']})")
    else:
        click.echo(f"Airflow at {info['url']} since {info['started_at']} ({info['executor']}, "
                   f"parallelism {info['parallelism']})")
        health = info.get("health", {})
        for name, c in info["components"].items():
            beat = health.get(name.replace("-", "_"), {}).get("status", "")
            click.echo(f"  {name:<14} pid {c['pid']:<8} {'running' if c['alive'] else 'GONE':<8} {beat:<10}"
                       f" {c['log']}")
        if "error" in health:
            click.echo(f"  api: {health['error']}")
        for dag_id, d in sorted(info.get("dags", {}).items()):
            click.echo(f"  {dag_id:<24} {'paused' if d['is_paused'] else 'active'}")
    if not info["running"]:
        sys.exit(1)


@main.command()
@click.option("--port", default=50051, show_default=True, help="TCP port (0 = any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def serve(port: int, host: str) -> None:
    """Serve the lake over Spark Connect for bioinformaticians.

    \b
    Clients get the layer.table names with:
      import omicslake; spark = omicslake.connect("sc://HOST:PORT")
    (same OMICSLAKE_HOME), or read any table by path: delta.`<location>`.
    """
    from omicslake.session import start_local_server

    settings = load_settings()
    with _status("starting Spark Connect server"):
        server, (h, p) = start_local_server(port=port, ip=host)
        from omicslake import connect

        own = connect(f"sc://{h}:{p}", settings.home)  # creates missing tables once
    click.echo(f"omicslake serving {settings.lake_root} at sc://{h}:{p}", err=False)
    click.echo(f'connect with: python -c \'import omicslake; s = omicslake.connect("sc://{h}:{p}")\'',
               err=True)
    sys.stdout.flush()
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    try:
        while not stop["flag"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    own.stop()  # before the server: a client left open retries its exit hook against a dead port
    server.stop()


@main.command()
@click.option("--persons", default=200, show_default=True, help="Persons in the generated population.")
@click.option("--sites", default=300, show_default=True, help="Random background sites in the VCF.")
def demo(persons: int, sites: int) -> None:
    """Run the whole pipeline on one generated population of a four-tier network.

    Persons registered at a county (HL7 v2 files), a city (HL7 v2 over MLLP, DICOM by
    C-STORE) and a provincial hospital (FHIR R4 Bundles), part of them sequenced at the
    national center (VCF + manifest, one BAM), some with lung or breast/ovarian cancer, type 2
    diabetes or a stroke. Runs the genomics, clinical, imaging, curation and cohorts DAGs with
    dag.test() and prints the table row counts. Running it again ingests nothing twice.
    """
    from omicslake.demo import run_demo

    settings = load_settings()
    summary = run_demo(settings, echo=lambda m: click.echo(m, err=True), persons=persons, sites=sites)
    click.echo(f"\ndemo finished in {summary['seconds']} s; lake at {settings.lake_root}")
    for name, n in summary["tables"].items():
        click.echo(f"  {name:<28} {n:>8} rows")
    click.echo("\ncohorts (omicslake cohort list | show NAME | report NAME):")
    for name, c in summary["cohorts"].items():
        click.echo(f"  {name:<20} {c['members']:>4} members  version {c['version']:<4} {c['report']}")
    click.echo(f"\npharmacogenes called (not uncallable): {summary['pgx_calls']}; "
               f"medication alerts: {len(summary['alerts'])}")
    for a in summary["alerts"]:
        click.echo(f"  ALERT {a['drug']} for a {a['gene']} {a['phenotype']} at {a['center_id']}")
    click.echo('\ntry: omicslake sql "SELECT * FROM gold.cohort_t2d_hba1c_features LIMIT 5"')


@main.command()
@click.argument("tables", nargs=-1)
def quality(tables: tuple[str, ...]) -> None:
    """Run the Great Expectations suites on TABLES (all tables if none given)."""
    from omicslake.catalog import lake_tables
    from quality.checks import check_tables

    settings = load_settings()
    spark = _spark(settings)
    names = list(tables) or [t.full_name for t in lake_tables(settings)]
    with _status(f"validating {len(names)} table(s)"):
        summary = check_tables(spark, settings, names)
    click.echo(json.dumps(summary))


@main.command()
@click.argument("tables", nargs=-1)
@click.option("--vacuum", "vacuum_hours", type=int, help="Remove unreferenced files older than N hours.")
@click.option("--dry-run/--no-dry-run", default=True, show_default=True, help="Vacuum: only list files.")
@click.option("--force", is_flag=True, help="Allow a vacuum retention below 168 hours.")
@click.option("--optimize", is_flag=True, help="Compact small files (Z-order where declared).")
@click.option("--zorder", help="Comma-separated columns to Z-order the whole table by.")
@click.option("--checkpoint", is_flag=True, help="Write a Delta checkpoint.")
def maintain(tables: tuple[str, ...], vacuum_hours: int | None, dry_run: bool, force: bool,
             optimize: bool, zorder: str | None, checkpoint: bool) -> None:
    """Maintain TABLES (default: every table), as the nightly omicslake_maintenance DAG does.

    \b
    With no step option, every step runs: compaction (Z-order by pos for silver.variants, by
    pos,person_id for silver.genotypes, in partitions with new files), vacuum at 168 h
    (listing only, unless --no-dry-run) and a checkpoint. Files of cited cohort versions
    (gold.cohort_versions) are never vacuumed. Prints each table's file count and size
    before and after. The run is recorded in ops.ingest_runs.
    """
    from jobs import maintain_tables
    from omicslake.delta_ops import MIN_RETENTION_HOURS, check_retention

    steps = [s for s, on in (("optimize", optimize or zorder), ("vacuum", vacuum_hours is not None),
                             ("checkpoint", checkpoint)) if on] or list(maintain_tables.STEPS)
    if vacuum_hours is not None and not dry_run:
        check_retention(vacuum_hours, force)  # refused before any engine starts
    settings = load_settings()
    spark = _spark(settings)
    with _status(f"maintaining {len(tables) or 'every'} table(s)"):
        result = maintain_tables.run(
            spark, settings, list(tables) or None,
            MIN_RETENTION_HOURS if vacuum_hours is None else vacuum_hours, force, dry_run, steps,
            zorder.split(",") if zorder else None)
    for name, report in result.details.items():
        click.echo(maintain_tables.describe(name, report))


@main.group()
def ingest() -> None:
    """Ingest center uploads into bronze (and silver where the step is cheap)."""


@ingest.command("vcf")
@click.argument("paths", nargs=-1, required=True)
@click.option("--center", "center_id", required=True, callback=_known_center, help="Sending center id.")
@click.option("--manifest", required=True, help="Sample manifest (CSV/TSV) for these VCFs.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False),
              help="Reference FASTA: left-align and trim indels as `bcftools norm -f` does.")
@click.option("--build", help="Reference build if the header does not say (GRCh37/GRCh38).")
@click.option("--check", "check", is_flag=True, help=_CHECK_HELP)
def ingest_vcf_cmd(paths, center_id, manifest, reference, build, check) -> None:
    """Ingest VCF/BCF/gVCF files (plain or bgzipped; folders too) and clean them into silver.

    \b
    Indexed files (.tbi/.csi next to them) are read in parallel by genomic region; plain-text
    VCFs by byte range; bgzipped or BCF files without an index by one task each.
    Re-ingesting a file that already landed changes nothing.
    """
    from omicslake.pipelines import genomics

    settings = load_settings()
    genomics(_spark(settings), settings, list(paths), center_id, manifest, build, reference, quality=check,
             progress=_status, on_result=_report, on_check=_echo_check)


@ingest.command("bam")
@click.argument("paths", nargs=-1, required=True)
@click.option("--center", "center_id", required=True, callback=_known_center, help="Sending center id.")
@click.option("--manifest", required=True, help="Sample manifest (CSV/TSV): @RG SM -> patient.")
@click.option("--targets", type=click.Path(exists=True, dir_okay=False),
              help="BED of target regions: depth is measured there, with the share at >= 20x.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False),
              help="Reference FASTA; required for CRAM.")
def ingest_bam_cmd(paths, center_id, manifest, targets, reference) -> None:
    """Alignment QC of indexed BAM/CRAM files into silver.alignment_qc.

    \b
    Counts match `samtools flagstat`; depth skips unmapped, secondary, QC-failed and duplicate
    reads as `samtools depth` does. The reads stay where they are; the table points to them.
    A file that cannot be QC'd goes to quarantine.bam with its reason; the others land.
    """
    _run_job("ingest_bam", f"QC of {len(paths)} alignment path(s)", "quarantine.bam", paths=list(paths),
             center_id=center_id, manifest=manifest, targets=targets, reference=reference)


def _clinical(feed: str, paths, center_id: str, check: bool) -> None:
    """An ingest command of a clinical feed: ``omicslake.pipelines.clinical``."""
    from omicslake.pipelines import clinical

    def report(result) -> None:
        _report(result, f"quarantine.{feed}" if result.job.startswith("ingest_") else None)

    settings = load_settings()
    clinical(_spark(settings), settings, feed, list(paths), center_id, quality=check, progress=_status,
             on_result=report, on_check=_echo_check)


@ingest.command("hl7")
@click.argument("paths", nargs=-1, required=True)
@click.option("--center", "center_id", required=True, callback=_known_center, help="Sending center id.")
@click.option("--check", "check", is_flag=True, help=_CHECK_HELP)
def ingest_hl7_cmd(paths, center_id, check) -> None:
    """Ingest HL7 v2 files, folders or the MLLP landing zone into bronze.hl7_messages.

    \b
    Segments may end in \\r, \\n or \\r\\n; a file may hold many messages. Messages that
    cannot be accepted go to quarantine.hl7 with file, byte offset, control id and reason.
    Accepted messages are then mapped into the silver clinical tables (encounters, conditions,
    observations, patient_identities), with ADT A40 merges applied.
    """
    _clinical("hl7", paths, center_id, check)


@ingest.command("fhir")
@click.argument("paths", nargs=-1, required=True)
@click.option("--center", "center_id", required=True, callback=_known_center, help="Sending center id.")
@click.option("--check", "check", is_flag=True, help=_CHECK_HELP)
def ingest_fhir_cmd(paths, center_id, check) -> None:
    """Ingest FHIR R4 Bundles (JSON) and bulk-export NDJSON into bronze.fhir_resources.

    \b
    Resources are validated with fhir.resources (R4B models) and upserted by type and id:
    a newer meta.lastUpdated replaces the stored version, an older one never does. Invalid JSON
    and invalid resources go to quarantine.fhir with the file, line/entry and reason.
    Landed resources are then mapped into the silver clinical tables.
    """
    _clinical("fhir", paths, center_id, check)


@main.command()
@click.option("--port", default=2575, show_default=True, help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all).")
@click.option("--center", "center_id", required=True, callback=_known_center,
              help="Center whose HIS/LIS sends to this port.")
def mllp(port: int, host: str, center_id: str) -> None:
    """Receive HL7 v2 over MLLP; land each message durably, then ACK it.

    \b
    AA: parsed and landed in STATE/landing/hl7/CENTER/.
    AE/AR: landed in STATE/landing/hl7-rejected/CENTER/, with the reason in MSA-3 and ERR.
    Load the landed messages with `omicslake ingest hl7 STATE/landing/hl7/CENTER --center CENTER`
    (the clinical DAG does this).
    """
    import asyncio

    from connectors.mllp import MllpServer

    settings = load_settings()
    server = MllpServer(settings.landing_dir, center_id, host, port)

    async def main_loop() -> None:
        h, p = await server.start()
        click.echo(f"omicslake MLLP listening on {h}:{p} for {center_id}; landing in "
                   f"{server.accepted_dir}", err=False)
        sys.stdout.flush()
        await server.serve_forever()

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        asyncio.run(main_loop())
    except KeyboardInterrupt:
        click.echo(f"stopped: {server.stats.accepted} accepted, {server.stats.rejected} rejected", err=True)


@main.command("dicom-scp")
@click.option("--port", default=11112, show_default=True, help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all).")
@click.option("--ae-title", default="OMICSLAKE", show_default=True, help="This SCP's AE title.")
@click.option("--center", "center_id", required=True, callback=_known_center,
              help="Center whose modalities/PACS send here.")
@click.option("--calling-ae", "calling_aes", multiple=True,
              help="Calling AE title allowed for this center (repeatable). Default: "
                   "OMICSLAKE_DICOM_CALLING_AES_<CENTER> (comma separated), with - in CENTER as _.")
def dicom_scp(port: int, host: str, ae_title: str, center_id: str, calling_aes: tuple[str, ...]) -> None:
    """Receive DICOM over the network (C-STORE); land each instance durably, then answer.

    \b
    Instances land in STATE/landing/dicom/CENTER/ before Success is returned.
    Associations from calling AE titles not configured for the center are rejected.
    Load them with `omicslake ingest dicom STATE/landing/dicom/CENTER --center CENTER`.
    """
    import os
    import threading

    from connectors.dicom_scp import StorageScp

    settings = load_settings()
    variable = f"OMICSLAKE_DICOM_CALLING_AES_{center_id.upper().replace('-', '_')}"
    allowed = list(calling_aes) or [a.strip() for a in os.environ.get(variable, "").split(",") if a.strip()]
    if not allowed:
        _err(f"no calling AE titles configured for {center_id}: pass --calling-ae or set "
             f"{variable}")
        sys.exit(2)
    scp = StorageScp(settings.landing_dir, center_id, ae_title, allowed)
    h, p = scp.start(host, port)
    click.echo(f"omicslake DICOM SCP {ae_title} listening on {h}:{p} for {center_id} "
               f"(calling AEs: {', '.join(allowed)}); landing in {scp.folder}")
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with suppress(KeyboardInterrupt):
        done.wait()
    scp.stop()
    click.echo(f"stopped: {scp.stats.stored} stored, {scp.stats.failed} failed", err=True)


@ingest.command("dicom")
@click.argument("paths", nargs=-1, required=True)
@click.option("--center", "center_id", required=True, callback=_known_center, help="Sending center id.")
@click.option("--keep-dates", is_flag=True, help="Keep dates instead of shifting them per person.")
def ingest_dicom_cmd(paths, center_id, keep_dates) -> None:
    """Ingest DICOM files, folders and zip archives (or the SCP landing zone).

    \b
    Headers go to bronze.dicom_instances; each instance is de-identified (PS3.15 Annex E basic
    profile) into the curated zone and listed in silver.imaging_instances/series/studies,
    with a PNG thumbnail per series. Non-DICOM, truncated or corrupt files go to
    quarantine.dicom. Re-ingesting the same files adds nothing.
    """
    _run_job("ingest_dicom", f"ingesting DICOM from {len(paths)} path(s)", "quarantine.dicom",
             paths=list(paths), center_id=center_id, shift_dates=not keep_dates)


@main.command()
@click.option("--link", "do_link", is_flag=True, help="Link source identities into one person per human.")
@click.option("--annotate", "do_annotate", is_flag=True, help="Annotate silver.variants.")
@click.option("--gtf", type=click.Path(exists=True), help="GTF/GFF3 of genes (e.g. GENCODE).")
@click.option("--clinvar", type=click.Path(exists=True), help="ClinVar VCF.")
@click.option("--gnomad", type=click.Path(exists=True), multiple=True,
              help="gnomAD-style sites VCF (repeat for per-chromosome files, or a folder).")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False),
              help="FASTA (with .fai) to left-align ClinVar/gnomAD alleles as silver's were.")
@click.option("--build", default="GRCh38", show_default=True, help="Build of the variants to annotate.")
@click.option("--backend", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the person-linkage model runs: DuckDB on the driver, or Splink's Spark "
                   "backend on the session's engine (a cluster's, for populations too large for the "
                   "driver).")
def curate(do_link, do_annotate, gtf, clinvar, gnomad, reference, build, backend) -> None:
    """Curate the lake: one person across feeds and centers, and annotated variants.

    \b
    With neither --link nor --annotate, both run. --link builds the master person index
    (silver.persons, person_links, person_link_review) and moves every silver table to the
    master person_id (--backend spark: its model on Splink's Spark backend). --annotate adds
    genes and region classes, ClinVar, gnomAD frequencies and cohort statistics
    (silver.variant_annotations, silver.variant_stats); a source not given uses its latest
    release registered in ops.reference_sources.
    """
    both = not (do_link or do_annotate)
    settings = load_settings()
    spark = _spark(settings)
    if do_link or both:
        d = _step(spark, settings, "link_persons", "linking persons", backend=backend).details
        click.echo(f"persons linked: {d.get('persons', 0)} from {d.get('identities', 0)} identities; "
                   f"links under review: {d.get('review_pairs', 0)}")
    if do_annotate or both:
        r = _step(spark, settings, "annotate_variants", "annotating variants", gtf=gtf, clinvar=clinvar,
                  gnomad=list(gnomad) or None, reference=reference, build=build)
        click.echo(f"variants annotated: {r.details.get('annotated', r.rows_written)}")


@main.group()
def person() -> None:
    """The master person index: who a source identifier belongs to."""


@person.command("xref")
@click.option("--authority", required=True, help="Assigning authority or identifier system.")
@click.option("--id", "identifier", required=True, help="The identifier value, as the source sent it.")
@click.option("--type", "id_type", help="Identifier type (MR, NI, NNCHN ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def person_xref(authority, identifier, id_type, as_json) -> None:
    """Cross-reference an identifier (IHE PIX-like): the person and every linked source identity.

    \b
    The value is keyed with the pseudonym secret before the lookup; the answer shows
    authorities, identifier types and centers, never clear values. The lookup is audited.
    """
    from omicslake.audit import audit
    from omicslake.persons import xref

    settings = load_settings()
    spark = _spark(settings)
    found = xref(spark, settings, authority, identifier, id_type)
    audit(spark, settings, "query", "person xref",
          {"authority": authority, "found": bool(found), "person_id": found and found["person_id"]})
    if found is None:
        raise InputError(f"no source has sent identifier {authority}|<value>; nothing to cross-reference")
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    click.echo(f"person {found['person_id']}")
    for i in found["identities"]:
        click.echo("  " + "  ".join(f"{k}={v}" for k, v in i.items()))


@main.group()
def cohort() -> None:
    """Specialty-disease cohorts: definitions in cohorts/*.yaml, published to gold.

    \b
    A definition names an index event, inclusion and exclusion rules (ICD-10 diagnoses,
    LOINC labs with UCUM units, genes with ClinVar significance or a variant, imaging
    modality/body part, age and sex, ATC/RxNorm medications), an observation window, an end
    strategy and a center subtree. `build` publishes gold.cohort, gold.cohort_inclusion_stats
    and gold.cohort_<name>_features; each publication is a Delta version you can cite and
    read back with `show --version N`. OMICSLAKE_COHORTS points at another definitions folder.
    """


@cohort.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per cohort.")
def cohort_list(as_json: bool) -> None:
    """Every definition, its latest published version and whether it is current."""
    from omicslake.cohort_definitions import load_all
    from omicslake.cohort_reads import publications

    settings = load_settings()
    loaded = load_all(settings.cohorts_dir)
    spark = _spark(settings)
    for d in loaded:
        pubs = publications(spark, settings, d.definition.id)
        last = pubs[-1] if pubs else None
        state = ("never built" if last is None else
                 "current" if last.checksum == d.definition.checksum() else "definition changed since")
        row = {"id": d.definition.id, "name": d.name, "title": d.definition.title, "state": state,
               "version": last and last.version, "members": last and last.members,
               "published_at": last and last.published_at}
        if as_json:
            click.echo(json.dumps(row))
        else:
            at = f"version {last.version}, {last.members} members, {last.published_at}" if last else "-"
            click.echo(f"{d.definition.id:>3}  {d.name:<24} {state:<26} {at}")


@cohort.command("build")
@click.argument("names", nargs=-1)
@click.option("--all", "build_all", is_flag=True, help="Every definition in the folder.")
@click.option("--force", is_flag=True, help="Rebuild even when the definition and inputs are unchanged.")
def cohort_build(names: tuple[str, ...], build_all: bool, force: bool) -> None:
    """Build and publish NAMES (or --all): a cohort whose definition and inputs have not changed
    since its last publication is skipped."""
    if not names and not build_all:
        raise InputError("name the cohorts to build, or give --all (see `omicslake cohort list`)")
    r = _run_job("build_cohorts", f"building {', '.join(names) or 'every cohort'}", names=list(names) or None,
                 force=force)
    for name, d in r.details.items():
        click.echo(f"  {name:<24} {d['status']:<10} version {d['version']}  {d['members']} members")


@cohort.command("show")
@click.argument("name")
@click.option("--version", "version", type=int, help="A published version (default: the latest).")
@click.option("--limit", type=int, default=50, show_default=True, help="Members to print (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON lines.")
def cohort_show(name: str, version: int | None, limit: int, as_json: bool) -> None:
    """The members of cohort NAME as published in VERSION (Delta time travel on gold.cohort)."""
    from omicslake.cohort_definitions import find
    from omicslake.cohort_reads import members, publication

    settings = load_settings()
    loaded = find(name, settings.cohorts_dir)
    spark = _spark(settings)
    pub = publication(spark, settings, loaded, version)
    rows = members(spark, settings, pub)
    rows = rows.limit(limit) if limit else rows
    if as_json:
        for r in rows.collect():
            click.echo(json.dumps(r.asDict(), default=str))
        return
    click.echo(f"cohort {name}, version {pub.version}: {pub.members} members "
               f"(definition {pub.checksum[:12]}, published {pub.published_at})")
    for r in rows.collect():
        click.echo(f"  {r.subject_id}  {r.cohort_start_date} .. {r.cohort_end_date}  {r.center_id}")


@cohort.command("report")
@click.argument("name")
@click.option("--version", "version", type=int, help="A published version (default: the latest).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="HTML file (default: STATE/reports/NAME-vN.html).")
def cohort_report(name: str, version: int | None, out: str | None) -> None:
    """Write one self-contained HTML page: attrition, age/sex pyramid, centers and tiers, and
    the carrier frequency of the definition's genes."""
    from pathlib import Path

    from omicslake.cohort_definitions import find
    from omicslake.cohort_reads import publication, report_data
    from omicslake.cohort_report import write_report

    settings = load_settings()
    loaded = find(name, settings.cohorts_dir)
    spark = _spark(settings)
    pub = publication(spark, settings, loaded, version)
    path = Path(out) if out else settings.state_dir / "reports" / f"{name}-v{pub.version}.html"
    with _status(f"summarising cohort {name} version {pub.version}"):
        write_report(report_data(spark, settings, loaded, pub), path)
    click.echo(f"report of cohort {name}, version {pub.version} ({pub.members} members): {path}")


@main.group()
def pgx() -> None:
    """Pharmacogenomics: diplotypes, CPIC recommendations and medication alerts.

    \b
    Ten pharmacogenes are called from PharmCAT's allele definitions (reference/pharmcat):
    CYP2B6, CYP2C19, CYP2C9, CYP3A5, DPYD, NUDT15, SLCO1B1, TPMT, UGT1A1 and VKORC1. A defining
    position with no call (no VCF record or gVCF block covering it) is a no-call, never taken
    as reference; such genes are 'partial' or 'uncallable', with the reason.
    """


@pgx.command("call")
def pgx_call() -> None:
    """Call every genotyped person's pharmacogenes and refresh recommendations and alerts."""
    d = _run_job("call_pgx", "calling pharmacogenes").details
    click.echo("diplotypes: " + ", ".join(f"{k} {v}" for k, v in sorted(d["diplotypes"].items())))
    click.echo(f"recommendations: {d['recommendations']}; medication alerts: {d['alerts']}")
    for line in d["not_called"]:
        click.echo(f"  not called: {line}")


@pgx.command("show")
@click.argument("person_id", required=False)
@click.option("--sample", "sample_id", help="A sample id instead of a person (silver.samples).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pgx_show(person_id: str | None, sample_id: str | None, as_json: bool) -> None:
    """One person's genes, diplotypes, phenotypes and CPIC recommendations."""
    from omicslake.pgx_reads import person_pgx

    if bool(person_id) == bool(sample_id):
        raise InputError("give a PERSON_ID or --sample SAMPLE_ID (one of them)")
    settings = load_settings()
    spark = _spark(settings)
    found = person_pgx(spark, settings, person_id, sample_id)
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    click.echo(f"person {found['person_id']} (samples: {', '.join(found['samples']) or 'none'})")
    for g in found["genes"]:
        call = g["diplotype"] or "-"
        click.echo(f"  {g['gene']:<8} {call:<28} {g['phenotype'] or '-':<32} {g['status']}"
                   + (f"  ({g['reason']})" if g["reason"] else ""))
    for r in found["recommendations"]:
        flag = "ACTION" if r["actionable"] else "      "
        click.echo(f"  {flag} {r['drug']} ({r['gene']} {r['phenotype']}): {r['recommendation']}")
    for a in found["alerts"]:
        click.echo(f"  ALERT  {a['drug']} prescribed {a['prescribed_at']} at {a['center_id']}: "
                   f"{a['recommendation']}")


@main.group("kg")
def kg() -> None:
    """The precision-medicine knowledge graph: gold.kg_nodes and gold.kg_edges.

    \b
    `build` derives the lake's part (person -> variant -> gene, variant -> gene with ClinVar
    significance, gene -> drug from CPIC, person -> ICD-10 category, drug and imaging study);
    persons appear only as person:<person_id>. `load` adds a release of PrimeKG (kg.csv) or
    Hetionet (nodes TSV + edges SIF). Queries read the lake's own rows plus the latest loaded
    release of each external graph, unless --release names releases.
    """


@kg.command("build")
def kg_build() -> None:
    """Rebuild the lake's rows of the graph (loaded external releases are kept)."""
    r = _run_job("build_kg", "building the knowledge graph")
    click.echo("nodes: " + ", ".join(f"{k} {v}" for k, v in r.details["nodes"].items()))
    click.echo("edges: " + ", ".join(f"{k} {v}" for k, v in r.details["edges"].items()))


@kg.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["primekg", "hetionet"]), required=True,
              help="primekg: one kg.csv; hetionet: the nodes TSV and the edges SIF/TSV (.gz read as is).")
@click.option("--release", required=True, help="Name of this release, e.g. 2023-03 or v1.0.")
@click.option("--replace", is_flag=True,
              help="The release name is loaded from other content: drop its rows and load these.")
def kg_load(files: tuple[str, ...], fmt: str, release: str, replace: bool) -> None:
    """Load one release of an external graph next to the lake's rows.

    \b
    The same content under the same name is skipped; other content under a loaded name is
    refused (releases are never mixed) unless --replace. Two releases of one graph coexist;
    queries read the latest unless told --release.
    """
    from jobs import build_kg

    settings = load_settings()
    spark = _spark(settings)
    with _status(f"loading {fmt} release {release}"):
        r = build_kg.load(spark, settings, fmt, list(files), release, replace)
    click.echo(r.summary())
    if r.status == "skipped":
        click.echo(f"{fmt} release {release} is already loaded with this content; nothing to do")


@kg.command("releases")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per release.")
def kg_releases(as_json: bool) -> None:
    """The loaded external graph releases; the newest of each graph is what queries read."""
    from omicslake.kg_reads import releases

    settings = load_settings()
    for r in releases(_spark(settings), settings):
        if as_json:
            click.echo(json.dumps(r.__dict__, default=str))
        else:
            click.echo(f"{r.source:<9} {r.release:<20} {r.records:>10} edges  loaded {r.loaded_at}  "
                       f"sha256 {r.sha256[:12]}")


@kg.command("neighbors")
@click.argument("node")
@click.option("--hops", default=1, show_default=True, type=click.IntRange(1, 6), help="Edges away from NODE.")
@click.option("--relation", "relations", multiple=True, help="Follow only this relation (repeatable).")
@click.option("--release", "releases", multiple=True,
              help="External graph release to read (repeatable). Default: the lake's own rows plus the "
                   "latest loaded release of each external graph; with --release, the lake's rows plus "
                   "exactly the named releases.")
@click.option("--max-edges", default=5000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Stop when one hop reaches more edges than this.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per edge followed.")
def kg_neighbors(node: str, hops: int, relations: tuple[str, ...], releases: tuple[str, ...],
                 max_edges: int, as_json: bool) -> None:
    """Nodes within --hops of NODE, edges followed in both directions.

    \b
    NODE is a node id: person:<person_id>, gene:EGFR, variant:GRCh38:chr7:55191822:T:G,
    disease:ICD10:C34, drug:clopidogrel, drug:DrugBank:DB00530 ... Each hop is a join on the
    engine; only the edges of the answer come back.
    """
    from omicslake.kg_reads import neighbors

    settings = load_settings()
    spark = _spark(settings)
    found = neighbors(spark, settings, node, hops, list(relations) or None, list(releases) or None,
                      max_edges)
    if as_json:
        for e in found["edges"]:
            click.echo(json.dumps(e, default=str))
        return
    click.echo(f"{node}  ({found['type']}{', ' + found['name'] if found['name'] else ''}; {found['source']})")
    for e in found["edges"]:
        far = e["node"]
        click.echo(f"  hop {e['hop']}  {e['src']} -[{e['relation']}]-> {e['dst']}   "
                   f"{far.get('type', '?')} {far.get('name') or ''}  ({e['source']}; {e['evidence'] or '-'})")
    click.echo(f"{len(found['edges'])} edge(s)", err=True)


if __name__ == "__main__":
    main()

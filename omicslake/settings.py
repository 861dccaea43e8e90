"""Settings come from environment variables so DAGs, CLI and tests share one source."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from omicslake.errors import SettingsError

ENGINES = ("local", "remote", "classic")
REMOTE_SCHEMES = ("s3", "s3a", "hdfs", "abfss", "gs")
DEMO_REGISTRY = Path(__file__).with_name("centers.demo.yaml")
SHIPPED_COHORTS = Path(__file__).resolve().parent.parent / "cohorts"


@dataclass(frozen=True)
class Settings:
    """Where the lake lives and which engine runs the jobs.

    ``home`` is a local folder or a URI (``s3://bucket/prefix``, ``hdfs://nn/path``). Tables live
    under ``{home}/lake``. Local state (Airflow home, landing zone, generated demo data, the
    demo pseudonym key) lives in ``state_dir``: ``{home}/state`` when home is a folder, else
    ``OMICSLAKE_STATE_DIR`` (default ``~/.omicslake-state``).
    """

    home: str
    engine: str = "local"
    spark_remote: str | None = None
    state_dir: Path = field(default_factory=lambda: Path.home() / ".omicslake-state")
    spark_master: str = "local[*]"
    principal: str = "omicslake"
    centers_file: Path = field(default_factory=lambda: DEMO_REGISTRY)
    cohorts_dir: Path = field(default_factory=lambda: SHIPPED_COHORTS)

    @property
    def is_local_storage(self) -> bool:
        return urlparse(self.home).scheme in ("", "file")

    @property
    def delta_rs_reaches_lake(self) -> bool:
        """Whether delta-rs can open the lake from this process (a folder or S3): then it does
        what the engine cannot (schema changes, table properties, time travel past Sail's
        checkpoints)."""
        return self.is_local_storage or self.lake_root.startswith(("s3://", "s3a://"))

    @property
    def lake_root(self) -> str:
        return f"{self.home.rstrip('/')}/lake"

    @property
    def landing_dir(self) -> Path:
        return self.state_dir / "landing"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs, taken from the same AWS_* variables Sail reads.

        Concurrent commits on S3 need no lock service: delta-rs 1.x and Sail both PUT each
        ``_delta_log/N.json`` with ``If-None-Match: *``, so the store refuses a second writer
        of version N and that writer retries on N+1 (tests/test_concurrency.py records it).
        The store must honour conditional writes (AWS S3 does since 2024). delta-rs 1.x has no
        DynamoDB locking provider any more (``AWS_S3_LOCKING_PROVIDER`` is ignored), and
        ``AWS_S3_ALLOW_UNSAFE_RENAME`` is not set: it changes nothing in 1.x but says the opposite.
        """
        if urlparse(self.home).scheme not in ("s3", "s3a"):
            return {}
        keys = {
            "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN": "AWS_SESSION_TOKEN",
            "AWS_REGION": "AWS_REGION",
            "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL",
            "AWS_ALLOW_HTTP": "AWS_ALLOW_HTTP",
        }
        return {dst: os.environ[src] for src, dst in keys.items() if os.environ.get(src)}


def _normalise_home(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else raw).expanduser()
        return str(path.resolve())
    if parsed.scheme not in REMOTE_SCHEMES:
        raise SettingsError(
            f"OMICSLAKE_HOME={raw!r}: unsupported scheme {parsed.scheme!r}; use a folder, "
            f"or a URI with one of {', '.join(REMOTE_SCHEMES)}"
        )
    if not parsed.netloc:
        raise SettingsError(f"OMICSLAKE_HOME={raw!r}: the URI has no bucket or host")
    return raw.rstrip("/")


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and check the settings; a bad value raises SettingsError naming the variable."""
    env = os.environ if env is None else env
    home = _normalise_home(env.get("OMICSLAKE_HOME") or str(Path.cwd() / ".omicslake"))
    engine = (env.get("OMICSLAKE_ENGINE") or "local").strip().lower()
    if engine not in ENGINES:
        raise SettingsError(
            f"OMICSLAKE_ENGINE={engine!r} is not one of {', '.join(ENGINES)}"
        )
    remote = env.get("SPARK_REMOTE") or None
    if engine == "remote":
        if not remote:
            raise SettingsError(
                "OMICSLAKE_ENGINE=remote needs SPARK_REMOTE=sc://host:port "
                "(a Spark Connect endpoint: Spark 4 with delta-spark, or a Sail cluster)"
            )
        if not remote.startswith("sc://"):
            raise SettingsError(f"SPARK_REMOTE={remote!r} must start with sc://")
    if urlparse(home).scheme in ("", "file"):
        state = Path(home) / "state"
    else:
        state = Path(env.get("OMICSLAKE_STATE_DIR") or Path.home() / ".omicslake-state")
    if env.get("OMICSLAKE_STATE_DIR"):
        state = Path(env["OMICSLAKE_STATE_DIR"]).expanduser()
    return Settings(
        home=home,
        engine=engine,
        spark_remote=remote,
        state_dir=state.resolve(),
        spark_master=env.get("OMICSLAKE_SPARK_MASTER") or "local[*]",
        principal=env.get("OMICSLAKE_PRINCIPAL") or env.get("USER") or "omicslake",
        centers_file=Path(env.get("OMICSLAKE_CENTERS") or DEMO_REGISTRY).expanduser().resolve(),
        cohorts_dir=Path(env.get("OMICSLAKE_COHORTS") or SHIPPED_COHORTS).expanduser().resolve(),
    )

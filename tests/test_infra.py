"""The deployment files in infra/ parse and name the versions pyproject.toml pins.

A Spark image, a delta-spark artifact or an Airflow image that drifts from the locked versions
fails here, not on the cluster: Spark ↔ pyspark, delta-spark ↔ the pip pin and a Spark it is
built for, hadoop-aws ↔ the Hadoop inside Spark, Airflow ↔ apache-airflow and Python.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pyspark
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
# Delta Lake release → the Spark lines it is built for (Delta release notes: 4.4.0 "is built for
# Apache Spark 4.2.0, 4.1.0 and 4.0.1"; 4.1–4.3 for 4.1.0 and 4.0.1; 4.0 for 4.0).
DELTA_SPARK = {"4.0": {"4.0"}, "4.1": {"4.0", "4.1"}, "4.2": {"4.0", "4.1"}, "4.3": {"4.0", "4.1"},
               "4.4": {"4.0", "4.1", "4.2"}}
DELTA_ARTIFACT = re.compile(r"io\.delta:delta-spark_(?:(\d+\.\d+)_)?(\d+\.\d+):([\w.\-]+)")


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.fullmatch(r"([\w.\-]+)(?:\[[\w,]+\])?==([\w.]+)", d).groups()
                for d in project["dependencies"] if "==" in d)
    pins["omicslake"] = project["version"]
    pins["python"] = re.search(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    return pins


PINS = _pins()
MAJOR_MINOR = ".".join(PINS["pyspark"].split(".")[:2])


def _jar_version(prefix: str) -> tuple[str, str]:
    """(name suffix, version) of a jar pyspark ships, e.g. spark-core_2.13-4.2.0.jar."""
    [jar] = (Path(pyspark.__file__).parent / "jars").glob(f"{prefix}*.jar")
    name, version = jar.stem.rsplit("-", 1)
    return name.removeprefix(prefix), version


SCALA = _jar_version("spark-core_")[0]
HADOOP = _jar_version("hadoop-client-api")[1]


def _files(*suffixes: str) -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                  and "__pycache__" not in p.parts)


def _text() -> dict[Path, str]:
    return {p: p.read_text() for p in _files(".yaml", ".yml", ".sh", ".conf", ".env", "Dockerfile", ".md")}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((INFRA / name).read_text()) if d]


def test_every_yaml_parses():
    found = _files(".yaml", ".yml")
    assert {p.relative_to(INFRA).as_posix() for p in found} >= {"k8s/spark-connect.yaml",
                                                                 "helm/airflow-values.yaml"}
    for path in found:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_the_pins_are_the_locked_versions():
    lock = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    for name in ("pyspark", "delta-spark", "apache-airflow", "pysail",
                 "apache-airflow-providers-openlineage"):
        assert lock[name] == PINS[name], name
    assert pyspark.__version__ == PINS["pyspark"]


def test_spark_images_are_the_pyspark_version():
    tags = [(p, t) for p, text in _text().items() for t in re.findall(r"apache/spark:([\w.\-]+)", text)]
    assert tags
    for path, tag in tags:
        assert tag.startswith(f"{PINS['pyspark']}-scala{SCALA}-"), (path, tag)


def test_delta_artifacts_are_the_pip_pin_built_for_this_spark():
    """Every delta-spark coordinate is the pip pin, for this Spark line and Scala, and is the one
    delta-spark's own pip helper asks Maven for."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = configure_spark_with_delta_pip(SparkSession.Builder())  # a fresh builder: options only
    expected = builder._options["spark.jars.packages"]
    found = [(p, m) for p, text in _text().items() for m in DELTA_ARTIFACT.finditer(text)]
    assert len({p for p, _ in found}) >= 3  # submit script, Connect conf, Kubernetes Deployment
    for path, m in found:
        spark_line, scala, version = m.groups()
        assert version == PINS["delta-spark"], (path, m.group(0))
        assert spark_line == MAJOR_MINOR and scala == SCALA, (path, m.group(0))
        assert m.group(0) == expected, (path, m.group(0), expected)
    assert MAJOR_MINOR in DELTA_SPARK[".".join(PINS["delta-spark"].split(".")[:2])]


def test_hadoop_aws_is_the_hadoop_inside_spark():
    found = [(p, v) for p, text in _text().items() for v in re.findall(r"hadoop-aws:([\w.\-]+)", text)]
    assert found
    for path, version in found:
        assert version == HADOOP, (path, version)


def test_airflow_images_are_the_airflow_and_python_pins():
    tags = [(p, t) for p, text in _text().items() for t in re.findall(r"apache/airflow:([\w.\-]+)", text)]
    assert tags
    for path, tag in tags:
        assert tag == f"{PINS['apache-airflow']}-python{PINS['python']}", (path, tag)
    dockerfile = (INFRA / "docker" / "airflow.Dockerfile").read_text()
    assert f'"apache-airflow=={PINS["apache-airflow"]}"' in dockerfile
    assert "COPY --chown=airflow:root dags/ /opt/airflow/dags/" in dockerfile


def test_images_install_this_wheel_and_python():
    wheel = f"omicslake-{PINS['omicslake']}-py3-none-any.whl"
    for name in ("spark.Dockerfile", "airflow.Dockerfile"):
        text = (INFRA / "docker" / name).read_text()
        assert f"dist/{wheel}" in text and "dist/requirements.txt" in text, name
    assert f"uv venv --python {PINS['python']} " in (INFRA / "docker" / "spark.Dockerfile").read_text()
    sail = [t for text in _text().values() for t in re.findall(r"(?:lakesail|pysail)[/:=]+([\d.]+)", text)]
    assert all(v == PINS["pysail"] for v in sail), sail  # a Sail image, if one is named


def test_helm_values_run_the_omicslake_image_on_the_pinned_airflow():
    [values] = _docs("helm/airflow-values.yaml")
    assert values["airflowVersion"] == values["defaultAirflowTag"] == PINS["apache-airflow"]
    tag = values["images"]["airflow"]["tag"]
    assert tag == f"{PINS['omicslake']}-airflow{PINS['apache-airflow']}"
    assert values["executor"] in ("KubernetesExecutor", "CeleryExecutor", "LocalExecutor")
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert values["dags"]["gitSync"]["enabled"] is False  # DAGs ship in the image with their code
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["OMICSLAKE_ENGINE"] == "remote"
    assert {s["envName"] for s in values["secret"]} >= {"OMICSLAKE_PSEUDONYM_KEY"}
    assert "OMICSLAKE_PSEUDONYM_KEY" not in env
    assert yaml.safe_load(values["config"]["openlineage"]["transport"])["type"]


def _connect_server() -> tuple[dict, dict]:
    docs = {d["kind"]: d for d in _docs("k8s/spark-connect.yaml")}
    return docs["Deployment"], docs["Service"]


def test_spark_connect_deployment_starts_connect_with_delta():
    deployment, service = _connect_server()
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["/opt/spark/sbin/start-connect-server.sh"]
    args = container["args"]
    packages = args[args.index("--packages") + 1].split(",")
    assert f"io.delta:delta-spark_{MAJOR_MINOR}_{SCALA}:{PINS['delta-spark']}" in packages
    confs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert confs["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert confs["spark.kubernetes.container.image"] == container["image"]
    account = confs["spark.kubernetes.authenticate.driver.serviceAccountName"]
    assert account == pod["spec"]["serviceAccountName"]
    env = {e["name"]: e for e in container["env"]}
    assert "SPARK_NO_DAEMONIZE" in env and {"POD_IP", "POD_NAME"} <= set(env)
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    [port] = service["spec"]["ports"]
    assert str(port["port"]) == confs["spark.connect.grpc.binding.port"]


def test_airflow_reaches_the_connect_service():
    _, service = _connect_server()
    meta = service["metadata"]
    url = f"sc://{meta['name']}.{meta['namespace']}.svc:{service['spec']['ports'][0]['port']}"
    [values] = _docs("helm/airflow-values.yaml")
    assert {e["name"]: e["value"] for e in values["env"]}["SPARK_REMOTE"] == url
    assert f"SPARK_REMOTE={url}" in (INFRA / "airflow.env").read_text().splitlines()


def test_spark_submit_entry_names_delta_and_ships_the_code_as_zip():
    text = (INFRA / "spark-submit-job.sh").read_text()
    for needed in ("--packages", "--conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
                   "--conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
                   '--py-files "$PY_FILES"', "dist/omicslake-*.zip", "OMICSLAKE_ENGINE=classic"):
        assert needed in text, needed
    assert "omicslake-*.whl" not in text  # executors do not import from a .whl py-file
    conf = dict(line.split(None, 1) for line in (INFRA / "spark-connect-delta.conf").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"


@pytest.mark.parametrize("script", [p.name for p in sorted(INFRA.glob("*.sh"))])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(INFRA / script)], check=True)

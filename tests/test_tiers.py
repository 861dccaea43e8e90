import json
import subprocess
import sys

import pytest

from omicslake.errors import RegistryError
from omicslake.settings import load_settings
from omicslake.tiers import Center, Network, demo_network, parse_registry, registry, require_center


def test_scope_is_own_center_and_below():
    net = demo_network()
    assert net.visible_centers("NAT") == set(net.centers)
    assert net.visible_centers("PRV-S") == {"PRV-S", "CTY-S1", "CTY-S2", "CNT-S1A", "CNT-S1B", "CNT-S2A"}
    assert net.visible_centers("CNT-S1A") == {"CNT-S1A"}


def test_all_four_tiers_present():
    assert {c.tier for c in demo_network().centers.values()} == {"national", "provincial", "city", "county"}


@pytest.mark.parametrize(
    "centers, message",
    [
        ([Center("A", "a", "national"), Center("B", "b", "provincial", "Z")], "parent 'Z' is unknown"),
        ([Center("A", "a", "national"), Center("B", "b", "county", "A"), Center("C", "c", "city", "B")],
         "cannot sit under"),
        ([Center("A", "a", "national"), Center("B", "b", "city", "A")], "exactly one tier up"),
        ([Center("A", "a", "provincial")], "only the national center"),
        ([Center("A", "a", "national"), Center("B", "b", "hamlet", "A")], "tier 'hamlet'"),
        ([Center("A", "a", "national"), Center("A", "b", "provincial", "A")], "listed twice"),
        ([Center("A", "a", "national"), Center("B'; --", "b", "provincial", "A")], "center id"),
    ],
)
def test_invalid_networks_fail(centers, message):
    with pytest.raises(RegistryError, match=message):
        Network(centers)


GOOD = """centers:
  - {center_id: N, name: Nation, tier: national}
  - center_id: P
    name: Province
    tier: provincial
    parent_id: N
"""


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD + "  - {center_id: P, name: P2, tier: provincial, parent_id: N}\n", "line 7: .*listed twice"),
        (GOOD + "  - {center_id: C, name: City, tier: city, parent_id: X}\n", "line 7: center C: parent 'X'"),
        (GOOD + "  - {center_id: C, name: City, tier: county, parent_id: N}\n", "line 7: .*one tier up"),
        (GOOD + "  - {center_id: C, tier: city, parent_id: P}\n", r"line 7 \(C\): missing name"),
        (GOOD + "  - {center_id: C, name: c, tier: city, parent: P}\n", "unknown key.*parent"),
        (GOOD + "  - {center_id: M, name: Other nation, tier: national}\n", "one national root, found 2"),
        ("centers: []\n", "non-empty list"),
        ("centers: [\n", "not valid YAML"),
    ],
)
def test_registry_errors_name_the_line(text, message):
    with pytest.raises(RegistryError, match=message):
        parse_registry(text, "reg.yaml")


def test_registry_file_from_settings(tmp_path):
    path = tmp_path / "centers.yaml"
    path.write_text(GOOD.replace("parent_id: N", "parent_id: null").replace("tier: provincial", "tier: x"))
    settings = load_settings({"OMICSLAKE_HOME": str(tmp_path), "OMICSLAKE_CENTERS": str(path)})
    with pytest.raises(RegistryError, match="line 3"):
        registry(settings)
    path.write_text(GOOD)  # a corrected file is read again
    assert set(registry(settings).centers) == {"N", "P"}
    assert require_center(settings, "P").parent_id == "N"
    with pytest.raises(RegistryError, match=r"'CTY01' is not in the registry .*known: N, P"):
        require_center(settings, "CTY01")
    missing = load_settings({"OMICSLAKE_HOME": str(tmp_path), "OMICSLAKE_CENTERS": str(tmp_path / "no.yaml")})
    with pytest.raises(RegistryError, match="does not exist"):
        registry(missing)


def _cli(args, tmp_path, **env):
    import os

    full = {**os.environ, "OMICSLAKE_HOME": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-m", "omicslake.cli", *args], capture_output=True, text=True,
                          env=full, timeout=120)


def test_centers_command_lists_the_registry(tmp_path):
    path = tmp_path / "centers.yaml"
    path.write_text(GOOD)
    out = _cli(["centers", "--json"], tmp_path, OMICSLAKE_CENTERS=str(path))
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["center_id"] for x in out.stdout.splitlines()] == ["N", "P"]
    text = _cli(["centers"], tmp_path, OMICSLAKE_CENTERS=str(path)).stdout
    assert "2 centers in" in text and "  P" in text


@pytest.mark.parametrize("command", [["ingest", "hl7", "x.hl7"], ["ingest", "vcf", "x.vcf"],
                                     ["mllp", "--port", "0"], ["dicom-scp", "--port", "0"]])
def test_unknown_center_is_refused_before_anything_starts(tmp_path, command):
    out = _cli([*command, "--center", "CTY01"], tmp_path)
    assert out.returncode == 2
    assert "center 'CTY01' is not in the registry" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "lake").exists() and not (tmp_path / "state" / "landing").exists()


def test_a_job_run_for_an_unknown_center_fails_and_is_recorded(spark, lake, settings, tmp_path):
    from pyspark.sql import functions as F

    from jobs import ingest_hl7
    from omicslake.catalog import read_table

    msg = tmp_path / "a.hl7"
    msg.write_text("MSH|^~\\&|LIS|X|OL|Y|20240101||ADT^A01|C1|P|2.5\rPID|1||123^^^X||Doe^Jane\r")
    with pytest.raises(RegistryError, match="'CTY01' is not in the registry"):
        ingest_hl7.run(spark, settings, [str(msg)], "CTY01")
    runs = read_table(spark, settings, "ops.ingest_runs").where(F.col("center_id") == "CTY01").collect()
    assert runs and {r.status for r in runs} == {"failed"} and all(r.rows_read == 0 for r in runs)
    bronze = read_table(spark, settings, "bronze.hl7_messages")
    assert bronze.where(F.col("center_id") == "CTY01").count() == 0

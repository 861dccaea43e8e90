"""FHIR follow-up questionnaires: answers in silver.followup_answers, coded ones as observations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from connectors.clinical_records import Source, Unmappable
from jobs import build_clinical, ingest_fhir
from omicslake.pseudonym import load_key, person_id

FHIR = Path(__file__).parent / "data" / "fhir"
KEY = b"unit-test-key-" + b"2" * 32
URL = "http://followup.example.org/fhir/Questionnaire/phq9-followup"
BAD = {  # response id -> what the quarantine reason must say
    "qr-bad-unknown": f"questionnaire {URL}|9.9 is not known to the lake (no Questionnaire with that url "
                      "and version in bronze)",
    "qr-bad-version": "linkId bedtime is not an item of the questionnaire",  # version 1.0 has no bedtime
    "qr-bad-linkid": "linkId phq9/q10 is not an item of the questionnaire under phq9",
    "qr-bad-type": "linkId phq9/score: a valueString answer to an item of type integer",
    "qr-bad-repeats": "linkId phq9/q1: 2 answers, but the item has repeats=false",
    "qr-bad-option": "linkId phq9/q2: code LA9999-9 (http://loinc.org) is not one of the item's "
                     "answerOptions",
    "qr-bad-deep": "linkId history/meds/taking/med-name: a valueInteger answer to an item of type string",
}


def _bundle() -> dict[str, dict]:
    entries = json.loads((FHIR / "followup_bundle.json").read_text())["entry"]
    return {e["resource"]["id"]: e["resource"] for e in entries}


def _map(resource: dict, questionnaire: dict | None) -> dict[str, list[dict]]:
    from connectors.fhir_clinical import records

    return records(resource, Source(KEY, "CTY-S1", "FHIR", "app", None, "c" * 64, "run-1"), questionnaire)


def test_answers_keep_nested_items_of_any_depth_with_typed_values():
    res = _bundle()
    out = _map(res["qr-101"], res["phq9-followup"])
    rows = {(a["link_path"], a["item_position"], a["answer_index"]): a for a in out["followup_answers"]}
    assert len(rows) == 15
    since = rows[("history/meds/taking/med-name/since", "6/0/0.0/0.0/0", 0)]  # 5 levels, items and answers
    assert (since["value_type"], str(since["value_date"]), since["link_id"]) == (
        "Date", "2025-11-02", "since")
    assert rows[("history/meds/taking/med-name", "6/0/0.0/0", 0)]["value_text"] == "sertraline"
    # the repeated group "meds": two instances told apart by item_position
    assert [rows[("history/meds/taking", p, 0)]["value_bool"] for p in ("6/0/0", "6/1/0")] == [True, False]
    q1 = rows[("phq9/q1", "0/0", 0)]
    assert (q1["value_code"], q1["value_system"], q1["value_text"], q1["item_type"]) == (
        "LA6569-3", "LOINC", "Several days", "choice")
    assert (q1["questionnaire_url"], q1["questionnaire_version"], q1["response_status"]) == (
        URL, "2.0", "completed")
    assert str(q1["authored_time"]) == "2026-04-01 00:30:00+00:00"
    assert q1["item_text"].startswith("Little interest")
    assert rows[("weight", "1", 0)]["value_num"] == 68.5 and rows[("weight", "1", 0)]["value_unit"] == "kg"
    assert rows[("sleep-hours", "2", 0)]["value_num"] == 6.5
    symptoms = [rows[("symptoms", "3", k)] for k in (0, 1)]  # open-choice: a coded and a free-text answer
    assert [(a["value_code"], a["value_text"]) for a in symptoms] == [
        ("25064002", "Headache"), (None, "dizziness")]
    assert str(rows[("last-visit", "4", 0)]["value_datetime"]) == "2026-03-15 02:00:00+00:00"
    assert rows[("bedtime", "5", 0)]["value_time"] == "23:30:00"
    assert {a["person_id"] for a in rows.values()} == {person_id(KEY, "FHIR:CTY-S1", "pat-21")}
    assert len({a["answer_id"] for a in rows.values()}) == 15
    assert len({a["response_id"] for a in rows.values()}) == 1

    obs = {o["observation_id"]: o for o in out["observations"]}  # the LOINC-coded items, SDC extraction
    assert {o["loinc_code"] for o in obs.values()} == {"44250-9", "44255-8", "44259-0", "44261-6", "29463-7"}
    score = obs[rows[("phq9/score", "0/3", 0)]["observation_id"]]
    assert (score["value_num"], score["category"], score["status"], str(score["effective_time"])) == (
        3.0, "survey", "final", "2026-04-01 00:30:00+00:00")
    assert (obs[q1["observation_id"]]["value_code"], obs[q1["observation_id"]]["person_id"]) == (
        "LA6569-3", q1["person_id"])
    assert rows[("sleep-hours", "2", 0)]["observation_id"] is None  # no code on the item: no observation


@pytest.mark.parametrize("rid", sorted(BAD))
def test_responses_that_do_not_fit_their_questionnaire_are_refused(rid):
    res = _bundle()
    lines = [json.loads(x) for x in (FHIR / "followup_responses.ndjson").read_text().splitlines()]
    qr = next(r for r in lines if r["id"] == rid)
    version = qr["questionnaire"].partition("|")[2]
    questionnaire = {"2.0": res["phq9-followup"], "1.0": res["phq9-followup-v1"]}.get(version)
    with pytest.raises(Unmappable) as refused:
        _map(qr, questionnaire)
    assert str(refused.value) == f"QuestionnaireResponse/{rid}: {BAD[rid]}"


def test_followup_through_fhir_ingest_and_build(fresh_lake):
    spark, s = fresh_lake
    first = ingest_fhir.run(spark, s, [str(FHIR / "followup_bundle.json")], "CTY-S1")
    assert (first.rows_accepted, first.rows_quarantined) == (4, 0)  # validated by fhir.resources R4B
    assert {r.resource_type for r in spark.table("bronze.fhir_resources").collect()} == {
        "Questionnaire", "QuestionnaireResponse", "Patient"}
    b1 = build_clinical.run(spark, s, run_ids=[first.run_id])  # questionnaire and response in one batch
    assert b1.rows_quarantined == 0 and b1.details["rows_by_table"]["followup_answers"] == 15

    later = ingest_fhir.run(spark, s, [str(FHIR / "followup_responses.ndjson")], "CTY-S1")
    b2 = build_clinical.run(spark, s, run_ids=[later.run_id])  # the questionnaire came in the earlier batch
    assert (b2.rows_read, b2.rows_quarantined) == (8, 7)
    bad = {r.location: r.reason for r in spark.table("quarantine.fhir").collect()}
    assert bad == {f"QuestionnaireResponse/{rid}": f"not mapped to silver: QuestionnaireResponse/{rid}: {why}"
                   for rid, why in BAD.items()}

    key = load_key(s)
    answers = spark.table("silver.followup_answers")
    later_rows = answers.where(F.col("source_record").startswith("QuestionnaireResponse/qr-102")).collect()
    assert sorted((a.link_path, a.questionnaire_version, a.response_status) for a in later_rows) == [
        ("phq9/q1", "2.0", "in-progress"), ("weight", "2.0", "in-progress")]  # no version named: the newest
    assert {a.person_id for a in answers.collect()} == {person_id(key, "FHIR:CTY-S1", "pat-21")}
    joined = spark.sql("""SELECT a.link_path, o.loinc_code, o.value_num, o.status
                          FROM silver.followup_answers a
                          JOIN silver.observations o ON o.observation_id = a.observation_id
                          WHERE a.link_path = 'phq9/score'""").collect()
    assert [tuple(r) for r in joined] == [("phq9/score", "44261-6", 3.0, "final")]
    assert spark.table("silver.observations").where("category = 'survey'").count() == 7
    deepest = answers.where(F.col("link_path") == "history/meds/taking/med-name/since").collect()
    assert [str(r.value_date) for r in deepest] == ["2025-11-02"]

    before = {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES}
    assert before["followup_answers"] == 17
    build_clinical.run(spark, s, rebuild=True)
    assert {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES} == before
    dump = " ".join(str(r.asDict()) for t in ("followup_answers", "observations") for r in spark.table(
        f"silver.{t}").collect())
    for direct in ("Zhou", "Xin", "APP-55231", "1986-02-17", "pat-21"):
        assert direct not in dump, direct

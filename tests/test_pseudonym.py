from omicslake.pseudonym import load_key, person_id, pseudonym
from omicslake.settings import load_settings


def test_keyed_and_stable():
    a = person_id(b"k" * 32, "HOSP-A", "MRN1")
    assert a == person_id(b"k" * 32, " hosp-a ", "MRN1 ")
    assert a != person_id(b"j" * 32, "HOSP-A", "MRN1")
    assert a != person_id(b"k" * 32, "HOSP-B", "MRN1")
    assert "MRN1" not in a and a.startswith("P") and len(a) == 32


def test_namespaces_differ():
    assert pseudonym(b"k" * 32, "x", "person") != pseudonym(b"k" * 32, "x", "specimen")


def test_generated_key_is_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("OMICSLAKE_PSEUDONYM_KEY", raising=False)
    s = load_settings({"OMICSLAKE_HOME": str(tmp_path)})
    k1 = load_key(s)
    assert (s.state_dir / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    assert load_key(s) == k1

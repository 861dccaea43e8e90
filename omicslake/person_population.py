"""A generated population with known truth, for testing and benchmarking person linkage.

Persons get Chinese names (family names drawn by frequency, compound ones included, one- or
two-character given names with homophone groups), a birth date, sex, a valid resident ID,
a phone and an address. Each is seen at one to three centers of a small network:

- ``CNT-S1A`` (county hospital, HL7 v2 ADT): names mostly in upper-case pinyin, often with
  typos, given/family swapped now and then, few resident IDs;
- ``CTY-S1`` (city hospital, HL7 v2 ADT): PID-5 in characters and pinyin, resident ID as NNCHN,
  and DICOM studies from its PACS (PatientID = its MRN);
- ``PRV-N`` (provincial hospital, FHIR R4 Patients): official name in characters plus pinyin,
  resident ID, telecom and address; one replaced Patient (Patient.link replaced-by);
- ``NAT-SEQ`` (sequencing center): a sample manifest naming the provincial MRN.

Records are perturbed as registration desks do: nicknames (小明/阿明), homophone characters
(伟/玮), pinyin typos, swapped names, day/month typos, missing fields, moved house, new phone,
duplicate registrations at one center, a resident ID mistyped (fails its check digit), and
twins (same family name, birth date, address and phone; different given names and IDs). Same
seed, same population.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

from omicslake.identifiers import resident_id_check_digit

FAMILY = ("王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
          "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
          "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
          "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
          "韦", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "段", "雷", "侯", "龙", "史",
          "欧阳", "司马", "诸葛", "上官")
HOMOPHONES = (("伟", "玮", "炜"), ("静", "晶", "菁"), ("丽", "莉", "俐"), ("敏", "民"), ("华", "桦"),
              ("杰", "洁", "婕"), ("婷", "亭"), ("涛", "韬"), ("明", "铭", "鸣"), ("文", "雯"),
              ("欣", "馨", "新"), ("宇", "羽", "雨"), ("浩", "昊", "皓"), ("晨", "辰"), ("俊", "君", "骏"),
              ("峰", "锋", "枫"), ("琳", "霖"), ("佳", "嘉"), ("慧", "惠"), ("军", "钧"))
GIVEN = tuple(c for g in HOMOPHONES for c in g) + tuple(
    "芳娜强磊洋勇艳娟超秀霞平刚桂英玉萍红鹏飞建国辉力斌凯怡雪梅颖博子轩睿泽思晴阳瑞海波亮宁东春兰凤云龙志光永德福安成康荣乐清")
CITIES = (("浙江省", "杭州市", "西湖区", "3101", "330106"), ("浙江省", "杭州市", "拱墅区", "3100", "330105"),
          ("浙江省", "宁波市", "海曙区", "3150", "330203"), ("浙江省", "温州市", "鹿城区", "3250", "330302"),
          ("浙江省", "绍兴市", "越城区", "3120", "330602"))
ROADS = ("文三路", "学院路", "天目山路", "中山路", "解放路", "人民路", "凤起路", "延安路", "体育场路",
         "湖墅南路")
NICKNAME_PREFIX = ("小", "阿")
KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"
COUNTY, CITY, PROVINCE, SEQ = "CNT-S1A", "CTY-S1", "PRV-N", "NAT-SEQ"
PRV_MRN_SYSTEM = "http://prv-n.example.cn/fhir/mrn"
NATIONAL_SYSTEM = "urn:oid:2.16.156"


@dataclass(frozen=True)
class Person:
    index: int
    family: str
    given: str
    sex: str
    birth: date
    national_id: str
    phone: str
    address: tuple[str, str, str, str]  # province, city, district, street
    postal: str


@dataclass(frozen=True)
class Record:
    """One registration of a person at a center, as that center's system sends it."""

    person: int
    center_id: str
    fmt: str  # HL7v2 | FHIR | DICOM | MANIFEST
    authority: str
    identifier: str
    family: str | None
    given: str | None
    pinyin_only: bool
    birth: date | None
    sex: str | None
    phone: str | None
    address: str | None
    postal: str | None
    national_id: str | None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Population:
    persons: list[Person]
    records: list[Record]
    twins: list[tuple[int, int]] = field(default_factory=list)
    invalid_ids: list[Record] = field(default_factory=list)
    shared_invalid_id: list[int] = field(default_factory=list)
    unknown: Record | None = None

    def truth(self) -> dict[tuple[str, str], int]:
        """(authority, identifier) of every record -> the person it belongs to."""
        return {(r.authority, r.identifier): r.person for r in self.records}

    def clear_values(self) -> set[str]:
        """Direct identifiers that must never reach silver (names, phones, addresses, IDs, MRNs)."""
        out = set()
        for r in self.records:
            digits = "".join(ch for ch in r.phone or "" if ch.isdigit())
            out |= {v for v in (r.identifier, r.phone, digits, r.address, r.national_id) if v and len(v) >= 6}
            if r.family and r.given:
                joined = f"{r.family}{r.given}"  # short Latin strings occur in base64 by chance
                out |= {f"{r.family}^{r.given}", f"{r.family} {r.given}"}
                out |= {joined} if len(joined) >= 8 or not joined.isascii() else set()
        return out


# --- persons -------------------------------------------------------------------------------


def syllables(text: str, surname: bool = False) -> list[str]:
    """Toneless pinyin syllables of a name part, the surname reading for a family name."""
    from pypinyin import lazy_pinyin

    from connectors.person_features import SURNAME_READINGS

    out = lazy_pinyin(text)
    if surname and text[0] in SURNAME_READINGS:
        out[0] = SURNAME_READINGS[text[0]]
    return [s.replace("ü", "u").replace("v", "u") for s in out]


def resident_id(rng: random.Random, region: str, birth: date, sex: str) -> str:
    """A valid 18-character resident ID: region, birth date, sequence (odd for men), check digit."""
    seq = rng.randrange(0, 499) * 2 + (1 if sex == "M" else 0)
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + resident_id_check_digit(body)


def mistype_id(rng: random.Random, value: str) -> str:
    """One digit of the first 17 changed: the MOD 11-2 check digit no longer holds."""
    i = rng.randrange(0, 17)
    return value[:i] + str((int(value[i]) + rng.randrange(1, 10)) % 10) + value[i + 1:]


def _given(rng: random.Random, avoid: str = "") -> str:
    pool = [c for c in GIVEN if c not in avoid]
    return "".join(rng.choice(pool) for _ in range(1 if rng.random() < 0.35 else 2))


def make_person(rng: random.Random, index: int) -> Person:
    weights = [max(1.0, 30 - i * 0.4) for i in range(len(FAMILY))]
    sex = rng.choice("MF")
    birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 75))
    province, city, district, postal, region = rng.choice(CITIES)
    room = f"{rng.randrange(1, 30)}{rng.randrange(1, 5):02d}室"
    building = f"{rng.randrange(1, 30)}幢{rng.randrange(1, 4)}单元{room}"
    street = f"{rng.choice(ROADS)}{rng.randrange(1, 400)}号{building}"
    return Person(index, rng.choices(FAMILY, weights)[0], _given(rng), sex, birth,
                  resident_id(rng, region, birth, sex), f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                  (province, city, district, street), f"{postal}{rng.randrange(10, 99)}")


def make_twin(rng: random.Random, p: Person, index: int) -> Person:
    """Same family name, birth date, address and phone; another given name and resident ID."""
    sex = rng.choice("MF")
    region = p.national_id[:6]
    given = _given(rng, avoid=p.given + "".join(g for grp in HOMOPHONES if p.given[-1] in grp for g in grp))
    return replace(p, index=index, given=given, sex=sex, national_id=resident_id(rng, region, p.birth, sex))


# --- how each center records a person ------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    """How one center's registration desk writes people down (probabilities per record)."""

    center_id: str
    fmt: str
    authority: str
    pinyin_only: float
    typo: float
    swap: float
    nickname: float
    homophone: float
    birth_typo: float
    birth_missing: float
    sex_missing: float
    phone: float
    address: float
    national_id: float


DESKS = {
    COUNTY: Desk(COUNTY, "HL7v2", COUNTY, pinyin_only=0.7, typo=0.12, swap=0.05, nickname=0.04,
                 homophone=0.05, birth_typo=0.05, birth_missing=0.04, sex_missing=0.05, phone=0.6,
                 address=0.6, national_id=0.2),
    CITY: Desk(CITY, "HL7v2", CITY, pinyin_only=0.0, typo=0.04, swap=0.02, nickname=0.03, homophone=0.05,
               birth_typo=0.03, birth_missing=0.02, sex_missing=0.02, phone=0.7, address=0.7,
               national_id=0.6),
    PROVINCE: Desk(PROVINCE, "FHIR", PRV_MRN_SYSTEM, pinyin_only=0.1, typo=0.03, swap=0.02, nickname=0.02,
                   homophone=0.04, birth_typo=0.02, birth_missing=0.02, sex_missing=0.01, phone=0.8,
                   address=0.8, national_id=0.7),
}


def latin(text: str, rng: random.Random, surname: bool = False) -> str:
    """The pinyin a desk types: upper case, syllables joined, spaced or hyphenated."""
    parts = syllables(text, surname)
    if surname or len(parts) == 1:
        return "".join(parts).upper()
    joiner = rng.choice(["", "", " ", "-"])
    return joiner.join(p.capitalize() for p in parts).upper()


def typo(rng: random.Random, word: str) -> str:
    """One keying slip: a letter dropped, doubled, replaced or two letters swapped."""
    if len(word) < 3:
        return word + rng.choice(KEYBOARD).upper()
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("drop", "double", "replace", "swap"))
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "replace":
        return word[:i] + rng.choice(KEYBOARD).upper() + word[i + 1:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


def _name(rng: random.Random, p: Person, desk: Desk) -> tuple[str, str, bool]:
    given = p.given
    if rng.random() < desk.nickname:
        given = rng.choice(NICKNAME_PREFIX) + given[-1]
    elif rng.random() < desk.homophone:
        group = next((g for g in HOMOPHONES if given[-1] in g), None)
        if group:
            given = given[:-1] + rng.choice([c for c in group if c != given[-1]])
    pinyin_only = rng.random() < desk.pinyin_only
    family = p.family
    if pinyin_only:
        family, given = latin(family, rng, surname=True), latin(given, rng)
        if rng.random() < desk.typo:
            family, given = (typo(rng, family), given) if rng.random() < 0.3 else (family, typo(rng, given))
    if rng.random() < desk.swap:
        family, given = given, family
    return family, given, pinyin_only


def _birth(rng: random.Random, birth: date, desk: Desk) -> date | None:
    if rng.random() < desk.birth_missing:
        return None
    if rng.random() >= desk.birth_typo:
        return birth
    if birth.day <= 12 and birth.day != birth.month and rng.random() < 0.4:
        return birth.replace(month=birth.day, day=birth.month)
    for day in (birth.day + 1, birth.day - 1):
        try:
            return birth.replace(day=day)
        except ValueError:
            continue
    return birth


def _address(rng: random.Random, p: Person, moved: bool) -> str:
    province, city, district, street = p.address
    if moved:
        street = f"{rng.choice(ROADS)}{rng.randrange(1, 400)}号"
    parts = [province, city, district, street] if rng.random() < 0.7 else [city, district, street]
    text = rng.choice(["", " "]).join(parts)
    return text.translate(str.maketrans("0123456789", "０１２３４５６７８９")) if rng.random() < 0.1 else text


def _phone(rng: random.Random, phone: str) -> str:
    if rng.random() < 0.1:
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
    spaced, dashed = f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
    return rng.choice([phone, phone, spaced, dashed])


def record(rng: random.Random, p: Person, desk: Desk, mrn: str) -> Record:
    """One registration of ``p`` at ``desk``, with that desk's habits and slips."""
    family, given, pinyin_only = _name(rng, p, desk)
    nid = p.national_id if rng.random() < desk.national_id else None
    if nid and rng.random() < 0.1:
        nid = mistype_id(rng, nid)
    extra = {} if pinyin_only else {"pinyin": (latin(p.family, rng, surname=True), latin(p.given, rng))}
    return Record(
        p.index, desk.center_id, desk.fmt, desk.authority, mrn, family, given, pinyin_only,
        _birth(rng, p.birth, desk), None if rng.random() < desk.sex_missing else p.sex,
        _phone(rng, p.phone) if rng.random() < desk.phone else None,
        _address(rng, p, rng.random() < 0.08) if rng.random() < desk.address else None,
        p.postal, nid, extra)


# --- the population ------------------------------------------------------------------------


class Registrar:
    """Hands out MRNs per center (a batch prefix keeps later batches' numbers new)."""

    def __init__(self, rng: random.Random, batch: str = "A"):
        self.rng, self.batch, self.count = rng, batch, {}

    def mrn(self, center: str) -> str:
        self.count[center] = self.count.get(center, 0) + 1
        return f"{center}-{self.batch}{self.count[center]:06d}"

    def register(self, p: Person, center: str) -> Record:
        desk = DESKS[center]
        mrn = self.mrn(center)
        r = record(self.rng, p, desk, mrn)
        if desk.fmt == "FHIR":
            r = replace(r, authority=f"FHIR:{center}", identifier=f"pat-{mrn.lower()}",
                        extra={**r.extra, "mrn": mrn})
        return r


def _visits(rng: random.Random) -> list[str]:
    k = rng.choices((1, 2, 3), (0.45, 0.35, 0.2))[0]
    return rng.sample([COUNTY, CITY, PROVINCE], k)


def generate(n_persons: int, seed: int = 7, twin_rate: float = 0.03, duplicate_rate: float = 0.04,
             dicom: int = 6, manifest_rate: float = 0.15) -> Population:
    """``n_persons`` persons (plus twins) and their registrations, with the special cases."""
    rng = random.Random(seed)
    persons = [make_person(rng, i) for i in range(n_persons)]
    twins = [(p.index, n_persons + k) for k, p in enumerate(rng.sample(persons, int(n_persons * twin_rate)))]
    persons += [make_twin(rng, persons[a], b) for a, b in twins]
    reg = Registrar(rng)
    visits = {p.index: _visits(rng) for p in persons[:n_persons]}
    visits.update({b: visits[a] for a, b in twins})
    records = []
    for p in persons:
        for center in visits[p.index]:
            records.append(reg.register(p, center))
            if rng.random() < duplicate_rate:
                records.append(reg.register(p, center))
    pop = Population(persons, records, twins)
    _special_cases(rng, pop, reg)
    pop.records += _imaging(rng, pop, dicom) + _manifest(rng, pop, manifest_rate)
    pop.invalid_ids = [r for r in pop.records if r.national_id and not _valid(r.national_id)]
    return pop


def _valid(value: str) -> bool:
    from omicslake.identifiers import parse_resident_id

    return parse_resident_id(value) is not None


def _special_cases(rng: random.Random, pop: Population, reg: Registrar) -> None:
    """An unnamed emergency registration (A40 material), a replaced FHIR Patient, and two
    different people behind one mistyped resident ID."""
    city = [r for r in pop.records if r.center_id == CITY and r.person not in {b for _, b in pop.twins}]
    survivor = rng.choice(city)
    pop.unknown = Record(survivor.person, CITY, "HL7v2", CITY, reg.mrn(CITY), "无名氏", None, False,
                         None, None, None, None, None, None)
    pop.records.append(pop.unknown)
    prv = next(r for r in pop.records if r.center_id == PROVINCE)
    old = reg.register(pop.persons[prv.person], PROVINCE)
    pop.records.append(replace(old, extra={**old.extra, "replaced_by": prv.identifier}))
    bad = mistype_id(rng, resident_id(rng, "330106", date(1990, 1, 1), "M"))
    for p in rng.sample(pop.persons[: len(pop.persons) - len(pop.twins)], 2):
        pop.records.append(replace(reg.register(p, COUNTY), national_id=bad))
        pop.shared_invalid_id.append(p.index)


def _imaging(rng: random.Random, pop: Population, n: int) -> list[Record]:
    """DICOM studies: the city PACS uses the city MRN; an outside CD has its own ids."""
    city = [r for r in pop.records if r.center_id == CITY and r.given and r.birth]
    out = []
    for i, r in enumerate(rng.sample(city, min(n, len(city)))):
        p = pop.persons[r.person]
        own = i >= n - 2
        out.append(Record(p.index, CITY, "DICOM", "EXT-CD" if own else CITY,
                          f"CD{rng.randrange(10**6):06d}" if own else r.identifier,
                          p.family, p.given, False, p.birth, p.sex, None, None, None, None,
                          {"pinyin": (latin(p.family, rng, surname=True), latin(p.given, rng))}))
    return out


def _manifest(rng: random.Random, pop: Population, rate: float) -> list[Record]:
    """Sample-manifest rows of the sequencing center, naming the provincial MRN."""
    prv = [r for r in pop.records if r.center_id == PROVINCE and "replaced_by" not in r.extra]
    return [Record(r.person, SEQ, "MANIFEST", PRV_MRN_SYSTEM, r.extra["mrn"], None, None, False, None, None,
                   None, None, None, None, {"sample_id": f"S{k:05d}"})
            for k, r in enumerate(rng.sample(prv, int(len(prv) * rate)))]


def next_batch(pop: Population, seed: int, revisits: int, new_persons: int) -> Population:
    """Later data: known persons at a center new to them, new persons, and the A40 that merges
    the unnamed registration into its person (``extra['mrg']`` of the A40 record)."""
    rng = random.Random(seed)
    reg = Registrar(rng, batch="B")
    seen: dict[int, set[str]] = {}
    for r in pop.records:
        seen.setdefault(r.person, set()).add(r.center_id)
    records = []
    for p in rng.sample(pop.persons, revisits):
        free = [c for c in (COUNTY, CITY, PROVINCE) if c not in seen.get(p.index, set())]
        if free:
            records.append(reg.register(p, rng.choice(free)))
    fresh = [make_person(rng, len(pop.persons) + k) for k in range(new_persons)]
    records += [reg.register(p, rng.choice((COUNTY, CITY, PROVINCE))) for p in fresh]
    survivor = next(r for r in pop.records if r.center_id == CITY and r.person == pop.unknown.person
                    and r is not pop.unknown)
    records.append(replace(survivor, extra={**survivor.extra, "mrg": pop.unknown.identifier}))
    return Population(pop.persons + fresh, records)


# --- the feeds -----------------------------------------------------------------------------


def _pid(r: Record) -> str:
    """A PID segment as the center's HIS sends it."""
    ids = f"{r.identifier}^^^{r.authority}^MR"
    if r.national_id:
        ids += f"~{r.national_id}^^^CHN^NNCHN" if r.center_id == CITY else f"~{r.national_id}^^^CN-NIC^NI"
    names = f"{r.family or ''}^{r.given or ''}"
    if "pinyin" in r.extra:
        names += "^^^^^L^I~{}^{}^^^^^L^A".format(*r.extra["pinyin"])
    address = f"{r.address}^^^^{r.postal or ''}^CHN^H" if r.address else ""
    phone = (f"^PRN^CP^^^^{r.phone}" if r.center_id == CITY else r.phone) if r.phone else ""
    born = f"{r.birth:%Y%m%d}" if r.birth else ""
    return f"PID|1||{ids}||{names}||{born}|{r.sex or 'U'}|||{address}||{phone}"


def hl7_message(r: Record, n: int, when: str) -> str:
    """ADT A04 (county), A08 (city), or A40 when the record carries the prior MRN to merge."""
    event, structure = ("A04", "ADT_A01") if r.center_id == COUNTY else ("A08", "ADT_A01")
    if "mrg" in r.extra:
        event, structure = "A40", "ADT_A39"
    segments = [f"MSH|^~\\&|HIS|{r.center_id}|OMICSLAKE|NAT|{when}||ADT^{event}^{structure}|"
                f"{r.center_id}-{when}-{n:06d}|P|2.5.1|||||CHN|UNICODE UTF-8", f"EVN|{event}|{when}", _pid(r)]
    if "mrg" in r.extra:
        segments.append(f"MRG|{r.extra['mrg']}^^^{r.authority}^MR")
    else:
        pv1 = ["PV1", "1", "O", f"CLINIC^^^{r.center_id}"] + [""] * 41
        pv1[19], pv1[44] = f"V{r.identifier}^^^{r.center_id}^VN", when
        segments.append("|".join(pv1))
    return "\r".join(segments)


def fhir_patient(r: Record) -> dict:
    """A FHIR R4 Patient as the provincial hospital exposes it."""
    res: dict = {"resourceType": "Patient", "id": r.identifier,
                 "identifier": [{"system": PRV_MRN_SYSTEM, "value": r.extra["mrn"],
                                 "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                      "code": "MR"}]}}]}
    if r.national_id:
        res["identifier"].append({"system": NATIONAL_SYSTEM, "value": r.national_id, "type": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NNCHN"}]}})
    res["name"] = [{"use": "official", "family": r.family, "given": [r.given] if r.given else []}]
    if "pinyin" in r.extra:
        res["name"].append({"use": "usual", "family": r.extra["pinyin"][0], "given": [r.extra["pinyin"][1]]})
    if r.sex:
        res["gender"] = {"M": "male", "F": "female"}[r.sex]
    if r.birth:
        res["birthDate"] = r.birth.isoformat()
    if r.phone:
        res["telecom"] = [{"system": "phone", "value": r.phone, "use": "mobile"}]
    if r.address:
        res["address"] = [{"use": "home", "text": r.address, "postalCode": r.postal}]
    if "replaced_by" in r.extra:
        res["link"] = [{"other": {"reference": f"Patient/{r.extra['replaced_by']}"}, "type": "replaced-by"}]
    return res


def write_feeds(records: list[Record], folder: Path, when: str = "20260101090000") -> dict[str, list[Path]]:
    """HL7 files (per center), FHIR NDJSON, a sample manifest and DICOM files, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {}
    for center in (COUNTY, CITY):
        msgs = [hl7_message(r, n, when) for n, r in enumerate(records)
                if r.fmt == "HL7v2" and r.center_id == center]
        if msgs:
            path = folder / f"{center}-{when}.hl7"
            path.write_text("\n".join(msgs) + "\n", encoding="utf-8")
            out.setdefault(center, []).append(path)
    patients = [fhir_patient(r) for r in records if r.fmt == "FHIR"]
    if patients:
        path = folder / f"{PROVINCE}-{when}.ndjson"
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in patients), encoding="utf-8")
        out[PROVINCE] = [path]
    rows = [r for r in records if r.fmt == "MANIFEST"]
    if rows:
        path = folder / f"{SEQ}-{when}.csv"
        path.write_text("sample_id,patient_id,assigning_authority,specimen,assay\n" + "".join(
            f"{r.extra['sample_id']},{r.identifier},{r.authority},blood,WGS\n" for r in rows))
        out[SEQ] = [path]
    dicom = [r for r in records if r.fmt == "DICOM"]
    if dicom:
        out["DICOM"] = [write_dicom(r, folder / "dicom" / f"{i:04d}.dcm") for i, r in enumerate(dicom)]
    return out


def write_dicom(r: Record, path: Path) -> Path:
    """A small CT instance of this person (pydicom's CT_small with the person's header)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.OtherPatientIDsSequence  # the template's own, shared by every copy
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName = "{}^{}=".format(*r.extra["pinyin"]) + f"{r.family}^{r.given}"
    ds.PatientID, ds.IssuerOfPatientID = r.identifier, r.authority
    ds.PatientBirthDate, ds.PatientSex = f"{r.birth:%Y%m%d}", r.sex
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path

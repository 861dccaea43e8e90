"""Units as sent by labs, mapped to UCUM codes where the mapping is known.

A unit the sender already labels UCUM (HL7 coding system ``UCUM``, FHIR system
``http://unitsofmeasure.org``) is kept as sent; anything else is looked up in ``KNOWN``
(case-insensitive, spaces ignored) and left unmapped (``None``) when absent, so nothing is
guessed.
"""

from __future__ import annotations

UCUM_SYSTEMS = {"UCUM", "ISO+", "ANS+", "HTTP://UNITSOFMEASURE.ORG"}

KNOWN: dict[str, str] = {
    "%": "%", "percent": "%", "pct": "%",
    "g/dl": "g/dL", "g/l": "g/L", "mg/dl": "mg/dL", "mg/l": "mg/L", "ug/dl": "ug/dL",
    "µg/dl": "ug/dL", "ug/l": "ug/L", "µg/l": "ug/L", "ng/ml": "ng/mL", "ng/l": "ng/L",
    "pg/ml": "pg/mL", "ug/ml": "ug/mL", "µg/ml": "ug/mL",
    "mol/l": "mol/L", "mmol/l": "mmol/L", "umol/l": "umol/L", "µmol/l": "umol/L",
    "nmol/l": "nmol/L", "pmol/l": "pmol/L", "meq/l": "meq/L", "mmol/mol": "mmol/mol",
    "u/l": "U/L", "iu/l": "[IU]/L", "miu/l": "m[IU]/L", "miu/ml": "m[IU]/mL",
    "uiu/ml": "u[IU]/mL", "µiu/ml": "u[IU]/mL", "iu/ml": "[IU]/mL", "u/ml": "U/mL",
    "10^9/l": "10*9/L", "x10^9/l": "10*9/L", "10*9/l": "10*9/L", "g/l(10^9)": "10*9/L",
    "10^12/l": "10*12/L", "x10^12/l": "10*12/L", "10*12/l": "10*12/L",
    "k/ul": "10*3/uL", "10^3/ul": "10*3/uL", "x10^3/ul": "10*3/uL", "10*3/ul": "10*3/uL",
    "m/ul": "10*6/uL", "10^6/ul": "10*6/uL", "10*6/ul": "10*6/uL",
    "fl": "fL", "pg": "pg", "ml": "mL", "l": "L", "dl": "dL",
    "mm/h": "mm/h", "mm/hr": "mm/h", "s": "s", "sec": "s", "min": "min", "h": "h", "hr": "h",
    "mmhg": "mm[Hg]", "mm hg": "mm[Hg]", "cmh2o": "cm[H2O]",
    "bpm": "/min", "beats/min": "/min", "/min": "/min", "breaths/min": "/min",
    "kg": "kg", "g": "g", "mg": "mg", "ug": "ug", "lb": "[lb_av]", "lbs": "[lb_av]",
    "cm": "cm", "m": "m", "mm": "mm", "in": "[in_i]", "kg/m2": "kg/m2", "kg/m^2": "kg/m2",
    "degc": "Cel", "°c": "Cel", "cel": "Cel", "c": "Cel", "degf": "[degF]", "°f": "[degF]",
    "ml/min": "mL/min", "ml/min/1.73m2": "mL/min/{1.73_m2}", "ml/min/1.73m^2": "mL/min/{1.73_m2}",
    "copies/ml": "{copies}/mL", "ratio": "{ratio}", "index": "{index}",
}


def to_ucum(unit: str | None, system: str | None = None) -> str | None:
    """The UCUM code for ``unit``; ``None`` when empty or not known."""
    if unit is None or not unit.strip():
        return None
    if system and system.strip().upper() in UCUM_SYSTEMS:
        return unit.strip()
    return KNOWN.get(unit.strip().lower()) or KNOWN.get(unit.replace(" ", "").lower())

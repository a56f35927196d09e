"""English text normalisation: write out what a reader says for numbers, money, dates, times,
ordinals, units, symbols and common abbreviations.

    >>> normalize("Dr. Smith paid $9.99 on 3/14/2024 at 9:30 am.")
    'Doctor Smith paid nine dollars and ninety nine cents on March fourteenth, twenty twenty four at nine thirty AM.'

It runs on every English sentence before any engine sees it, so hibari, Piper and espeak-ng all
read "9:30 am" or "$1.2bn" the same way (each engine's own front end reads some of these, each
differently, and some wrongly). Number words come from ``inflect`` (MIT); the rules here only
decide *which* reading a string of digits gets. Rules run in order, most specific first: a date
is claimed before its parts could be read as a range or a fraction.
"""

from __future__ import annotations

import re
from functools import lru_cache

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
_MONTH_ABBR = {m[:3].lower(): m for m in MONTHS}  # "sept"[:3] is "sep" too
_MONTH_RE = "|".join(MONTHS + [m[:3] for m in MONTHS] + ["Sept"])
CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
            "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen"),
            "₹": ("rupee", "rupees", "paisa", "paise"), "USD": ("dollar", "dollars", "cent", "cents"),
            "EUR": ("euro", "euros", "cent", "cents"), "GBP": ("pound", "pounds", "penny", "pence")}
SCALES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million",
          "b": "billion", "B": "billion", "bn": "billion", "tn": "trillion",
          "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}
UNITS = {"km": ("kilometer", "kilometers"), "m": ("meter", "meters"), "cm": ("centimeter", "centimeters"),
         "mm": ("millimeter", "millimeters"), "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"),
         "mg": ("milligram", "milligrams"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
         "oz": ("ounce", "ounces"), "ft": ("foot", "feet"), "mi": ("mile", "miles"),
         "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour", "kilometers per hour"),
         "kph": ("kilometer per hour", "kilometers per hour"), "l": ("liter", "liters"),
         "ml": ("milliliter", "milliliters"), "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes"),
         "TB": ("terabyte", "terabytes"), "kB": ("kilobyte", "kilobytes"), "Hz": ("hertz", "hertz"),
         "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
         "ms": ("millisecond", "milliseconds"), "s": ("second", "seconds"), "min": ("minute", "minutes"),
         "h": ("hour", "hours"), "hrs": ("hour", "hours"), "W": ("watt", "watts"), "kW": ("kilowatt", "kilowatts"),
         "kWh": ("kilowatt hour", "kilowatt hours"), "V": ("volt", "volts")}
TITLES = {"Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor", "St": "Saint",
          "Mt": "Mount", "Gen": "General", "Capt": "Captain", "Sgt": "Sergeant", "Lt": "Lieutenant",
          "Col": "Colonel", "Gov": "Governor", "Sen": "Senator", "Rep": "Representative",
          "Rev": "Reverend", "Hon": "Honorable", "Pres": "President"}
ABBREVIATIONS = {"e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus", "vs": "versus",
                 "approx.": "approximately", "incl.": "including", "Inc.": "Incorporated",
                 "Ltd.": "Limited", "Co.": "Company", "Corp.": "Corporation", "Jr.": "Junior",
                 "Sr.": "Senior", "Dept.": "Department", "Univ.": "University", "est.": "established",
                 "Ave.": "Avenue", "Blvd.": "Boulevard", "Rd.": "Road", "Ph.D.": "PhD", "a.k.a.": "also known as",
                 "w/": "with", "w/o": "without"}
SYMBOLS = {"&": "and", "@": "at", "+": "plus", "=": "equals", "~": "about", "×": "times", "°": "degrees"}
FRACTIONS = {2: ("half", "halves"), 3: ("third", "thirds"), 4: ("quarter", "quarters")}

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_END = r"[\"'”’)\]]*\s*$"  # a trailing period is kept only at the end of the sentence


@lru_cache(maxsize=1)
def _inflect():
    import inflect  # 1.5 s to import (typeguard): a Voice imports it when it loads, see warm()

    return inflect.engine()


def warm() -> None:
    """Import the number speller now, not in the middle of the first sentence with a digit
    (it cost a voice agent's answer 1.7 s in benchmarks/agent_latency.py)."""
    _inflect()


def cardinal(text: str | int) -> str:
    """'1,250' -> 'one thousand two hundred fifty'; '3.05' -> 'three point zero five'."""
    s = str(text).replace(",", "")
    if s.startswith("-"):
        return "minus " + cardinal(s[1:])
    words = _inflect().number_to_words(s, andword="")
    return re.sub(r"[\s,-]+", " ", words).strip()


def ordinal(n: int | str) -> str:
    """21 -> 'twenty first'."""
    return re.sub(r"[\s,-]+", " ", _inflect().number_to_words(_inflect().ordinal(int(n)), andword="")).strip()


def year(n: int) -> str:
    """1997 -> 'nineteen ninety seven', 2005 -> 'two thousand five', 1900 -> 'nineteen hundred'."""
    if 2000 <= n <= 2009 or not 1100 <= n <= 2099:
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    return f"{cardinal(hi)} {'oh ' + cardinal(lo) if lo < 10 else cardinal(lo)}"


def _digits(s: str) -> str:
    return " ".join("oh" if d == "0" else cardinal(d) for d in s if d.isdigit())


def _keep_period(m: re.Match) -> str:
    return "." if m.group(0).endswith(".") and re.match(_END, m.string[m.end():]) else ""


# ------------------------------------------------------------------------------- rules


def _money(m: re.Match) -> str:
    sym = m.group("sym") or m.group("sym2")
    one, many, sub_one, sub_many = CURRENCY[sym]
    amount, scale = m.group("amount").replace(",", ""), m.group("scale")
    if scale:
        return f"{cardinal(amount)} {SCALES[scale]} {many}"
    whole, _, frac = amount.partition(".")
    units, cents = int(whole or 0), int((frac + "00")[:2]) if frac else 0
    parts = []
    if units or not cents:
        parts.append(f"{cardinal(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    h, mins, ampm = int(m.group("h")), m.group("m"), m.group("ampm")
    words = cardinal(h)
    if mins and mins != "00":
        words += " " + (f"oh {cardinal(int(mins))}" if mins[0] == "0" else cardinal(int(mins)))
    elif not ampm:
        words += " o'clock"
    if ampm:
        words += " " + ampm[0].upper() + "M" + _keep_period(m)
    return words


def _date(month: str, day: str | None, yr: str | None) -> str:
    out = month if not day else f"{month} {ordinal(day)}"
    return f"{out}, {year(int(yr))}" if yr else out


def _month(name: str) -> str:
    return _MONTH_ABBR.get(name.lower()[:3], name)


def _us_date(m: re.Match) -> str:
    mo, d, y = int(m.group(1)), int(m.group(2)), m.group(3)
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    y = y if len(y) == 4 else f"20{y}"
    return _date(MONTHS[mo - 1], str(d), y)


def _iso_date(m: re.Match) -> str:
    y, mo, d = m.group(1), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return _date(MONTHS[mo - 1], str(d), y)


def _number(m: re.Match) -> str:
    s = m.group(0)
    if re.fullmatch(r"\d{4}", s) and 1100 <= int(s) <= 2099:
        return year(int(s))
    return cardinal(s)


def _fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if den in FRACTIONS:
        name = FRACTIONS[den][0 if num == 1 else 1]
    elif 5 <= den <= 20:
        name = ordinal(den) + ("" if num == 1 else "s")
    else:
        return f"{cardinal(num)} over {cardinal(den)}"
    return f"{cardinal(num)} {name}"


def _decade(m: re.Match) -> str:
    """1990s -> 'nineteen nineties', '80s -> 'eighties', 1900s -> 'nineteen hundreds'."""
    digits = m.group(1) + "0"
    words = year(int(digits)) if len(digits) == 4 else cardinal(int(digits))
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


RULES: list[tuple[re.Pattern, object]] = [  # (pattern, replacement string or function)
    # money first: "$9.99" must not become a decimal, "$5m" not five meters
    (re.compile(rf"(?:(?P<sym>[$£€¥₹])\s?|(?P<sym2>USD|EUR|GBP)\s)(?P<amount>{_NUM})"
                rf"(?:\s?(?P<scale>{_alt(SCALES)})\b)?"), _money),
    # dates
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), _iso_date),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b"), _us_date),
    (re.compile(rf"\b({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?(?:,? (\d{{4}}))?\b"),
     lambda m: _date(_month(m.group(1)), m.group(2), m.group(3))),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?({_MONTH_RE})\b\.?(?:,? (\d{{4}})\b)?"),
     lambda m: f"{ordinal(m.group(1))} of {_date(_month(m.group(2)), None, m.group(3))}"),
    (re.compile(rf"\b({_MONTH_RE})\. "), lambda m: _month(m.group(1)) + " "),
    # times: 9:30, 9:30 pm, 7pm, 9.30 a.m.
    (re.compile(r"\b(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::\d\d)?(?:\s?(?P<ampm>[aApP])\.?[mM]\b\.?)?"), _time),
    (re.compile(r"\b(?P<h>1[0-2]|0?\d)(?:\.(?P<m>[0-5]\d))?\s?(?P<ampm>[aApP])\.?[mM]\b\.?"), _time),
    # phone numbers, digit by digit
    (re.compile(r"(?<![\d-])(?:\((\d{3})\)\s?|(\d{3})[-. ])?(\d{3})-(\d{4})(?![\d-])"),
     lambda m: ", ".join(_digits(g) for g in m.groups() if g)),
    # percentages, degrees, ordinals, fractions, ranges, units
    (re.compile(rf"(-?)({_NUM})\s?%"), lambda m: ("minus " if m.group(1) else "") + cardinal(m.group(2)) + " percent"),
    (re.compile(rf"(-?{_NUM})\s?°\s?([CF])\b"),
     lambda m: f"{cardinal(m.group(1))} degrees {'Celsius' if m.group(2) == 'C' else 'Fahrenheit'}"),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), lambda m: ordinal(m.group(1))),
    (re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?![\d/])"), _fraction),
    (re.compile(r"(?<![\d.,-])(\d+)\s?[-–]\s?(\d+)(?!\d|[.,]\d)"), r"\1 to \2"),
    (re.compile(r"(?<![\w.,])'?(\d|1\d\d|20\d)0s\b"), _decade),
    (re.compile(rf"(?<![\w.,])(-?{_NUM})(?:\s({_alt(UNITS)})|({_alt(u for u in UNITS if len(u) > 1)}))(?![\w/])"),
     lambda m: f"{cardinal(m.group(1))} {UNITS[m.group(2) or m.group(3)][0 if m.group(1) in ('1', '-1') else 1]}"),
    # abbreviations and symbols
    (re.compile(r"(?<=[A-Z][a-z] )St\.|(?<=[A-Z][a-z][a-z] )St\.|(?<=[A-Z][a-z]{3} )St\."), "Street"),
    (re.compile(rf"\b({_alt(TITLES)})\.?(?= [A-Z])"), lambda m: TITLES[m.group(1)]),
    (re.compile(r"\b(No|Nos|no)\.\s?(?=\d)"), "number "),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(rf"(?<![\w.])({_alt(ABBREVIATIONS)})(?!\w)"),
     lambda m: ABBREVIATIONS[m.group(1)] + (_keep_period(m) if m.group(1).endswith(".") else "")),
    (re.compile(rf"\s?({_alt(SYMBOLS)})\s?"), lambda m: f" {SYMBOLS[m.group(1)]} "),
    # whatever digits are left
    (re.compile(r"(?:(?<=\s)|^)-(?=\d)"), "minus "),
    (re.compile(r"(?<=[A-Za-z])-?(?=\d)|(?<=\d)(?=[A-Za-z])"), " "),
    (re.compile(rf"(?<![\d,.])(?:{_NUM})(?![\d])"), _number),
]


def normalize(sentence: str) -> str:
    """One English sentence with numbers, money, dates, times and abbreviations written out."""
    for pattern, repl in RULES:
        sentence = pattern.sub(repl, sentence)
    return re.sub(r"\s{2,}", " ", re.sub(r"\s+([,.;:!?])", r"\1", sentence)).strip()

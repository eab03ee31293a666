"""Reading what a worker says when it points at numbered parts or options.

Workers do not always answer "2, 3". They say "all of them", "none", "parts 1 and 3", "1-3",
"Parts 2 through 4", or quote the part back ("the part 'due to the fact that' is wordy"). Every
find/select step reads answers through :func:`parse_parts`, which returns *what* the worker said
(a set of part numbers, all, none, or nothing usable) and *why* it was read that way, so the trace
can show it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_QUOTES = "\"'\u201c\u201d\u2018\u2019`\u00ab\u00bb"
_QUOTED = re.compile(r"[\"\u201c\u00ab`]([^\"\u201c\u201d\u00ab\u00bb`]{2,}?)[\"\u201d\u00bb`]"
                     r"|(?<![A-Za-z])['\u2018]([^'\u2018\u2019]{2,}?)['\u2019](?![A-Za-z])")
_ALL = re.compile(r"^\W*(all|every\s*one|everything|both)\W*$|\b(all\s+of\s+them|all\s+(?:of\s+)?(?:the\s+)?"
                  r"(?:\d+\s+|numbered\s+)?parts|every\s+part|each\s+part|each\s+of\s+them|the\s+whole\s+text|"
                  r"the\s+entire\s+text|all\s+(?:the\s+)?(?:\d+\s+)?of\s+them)\b", re.IGNORECASE)
_NONE = re.compile(r"^\W*(none|no(?:ne)?\s+(?:of\s+them|parts?)|nothing|no\s+errors?|n/?a|no)\b"
                   r"|\b(none of (?:them|the parts)|no part (?:needs|has|contains|is)|there are no (?:errors|parts)"
                   r"|nothing (?:needs|to (?:fix|change)))\b", re.IGNORECASE)
_RANGE = re.compile(r"(?<![\d.])(\d{1,3})\s*(?:-|\u2013|\u2014|to|through|thru)\s*(\d{1,3})(?![\d.])",
                    re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d{1,3})(?![\d]|\.\d)")
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
          "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
_WORD_NUM = re.compile(r"\bpart\s+(" + "|".join(_WORDS) + r")\b|\b(" + "|".join(_WORDS) + r")\s+part\b",
                       re.IGNORECASE)


@dataclass(frozen=True)
class PartsAnswer:
    """What a worker named: ``kind`` is ``numbers``, ``all``, ``none`` or ``unusable``."""

    kind: str
    numbers: frozenset[int] = field(default_factory=frozenset)
    out_of_range: tuple[int, ...] = ()   #: numbers named that no part has
    how: str = ""                        #: how the answer was read (numbers, range, quote, words)

    @property
    def usable(self) -> bool:
        return self.kind != "unusable"


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def quoted_parts(answer: str, parts: Sequence[str]) -> set[int]:
    """Numbers (1-based) of the parts a worker quoted back: a quote that is (or lies inside) a part."""
    found: set[int] = set()
    norm_parts = [_norm(p) for p in parts]
    for m in _QUOTED.finditer(answer):
        q = _norm(m.group(1) or m.group(2) or "")
        if len(q) < 3:
            continue
        for i, p in enumerate(norm_parts):
            if p and (q == p or q in p or (len(p) >= 3 and p in q)):
                found.add(i + 1)
    return found


def parse_parts(answer: str, parts: Sequence[str] | int) -> PartsAnswer:
    """The part numbers (1-based) a worker's ``answer`` names among ``parts`` (their texts, or a count).

    Understood: numbers ("2, 3", "parts 1 and 3", "Part 2."), ranges ("1-3", "2 to 4", "2 through 4"),
    number words ("the second part"), parts quoted back ("'due to the fact that'"), "all of them" /
    "every part" (all parts) and "none" / "no errors" (no part). Numbers that no part has are reported
    in ``out_of_range``. An answer naming nothing readable is ``unusable`` (the worker abstains)."""
    texts = list(parts) if not isinstance(parts, int) else []
    n = parts if isinstance(parts, int) else len(texts)
    text = (answer or "").strip()
    if not text:
        return PartsAnswer("unusable", how="empty answer")
    # quotes first: a quoted part may contain digits or the word "all"
    quoted = quoted_parts(text, texts) if texts else set()
    rest = _QUOTED.sub(" ", text) if quoted else text
    if _ALL.search(rest) and n > 0:
        return PartsAnswer("all", frozenset(range(1, n + 1)), (), "all")
    numbers: set[int] = set()
    how: list[str] = []
    if quoted:
        how.append("quote")
    for m in _RANGE.finditer(rest):
        a, b = int(m.group(1)), int(m.group(2))
        if a <= b and b - a <= 50:
            numbers.update(range(a, b + 1))
            how.append("range")
    rest_no_ranges = _RANGE.sub(" ", rest)
    for m in _NUMBER.finditer(rest_no_ranges):
        numbers.add(int(m.group(1)))
        how.append("numbers")
    for m in _WORD_NUM.finditer(rest_no_ranges):
        numbers.add(_WORDS[(m.group(1) or m.group(2)).lower()])
        how.append("words")
    in_range = {k for k in numbers if 1 <= k <= n}
    bad = sorted(k for k in numbers if not 1 <= k <= n)
    picked = in_range | quoted
    if picked:
        return PartsAnswer("numbers", frozenset(picked), tuple(bad), "+".join(dict.fromkeys(how)))
    if _NONE.search(rest):
        return PartsAnswer("none", frozenset(), tuple(bad), "none")
    return PartsAnswer("unusable", frozenset(), tuple(bad), "out of range" if bad else "nothing readable")


def parse_option(answer: str, options: Sequence[str]) -> int | None:
    """The index of the option a worker quoted back or copied (exactly one option matches), else None."""
    text = " ".join((answer or "").split())
    if not text:
        return None
    visible = [ch for ch in text if not ch.isspace()]
    if sum(ch.isalnum() for ch in visible) < 0.5 * len(visible):
        return None  # mostly symbols: garbage, not a copied option
    low = _norm(text)
    norm_opts = [_norm(o) for o in options]
    exact = [i for i, o in enumerate(norm_opts) if o and o == low]
    if len(exact) == 1:
        return exact[0]
    quoted = [_norm(m.group(1) or m.group(2) or "") for m in _QUOTED.finditer(text)]
    for q in quoted or [low]:
        if len(q) < 3:
            continue
        hits = [i for i, o in enumerate(norm_opts) if o and (q == o or (len(q) >= 12 and q in o))]
        if len(hits) == 1:
            return hits[0]
    return None

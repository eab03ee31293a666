"""Read a rating, a choice or a top-k selection out of free model text.

Every parser returns ``None`` when the text does not say one clear answer; callers count that as a parse
failure and keep the raw text. There is never a silent default.

>>> parse_rating("Rating: 4")
4
>>> parse_rating("I'd say 4/5 - somewhat offensive")
4
>>> parse_rating("**four**")
4
>>> parse_choice("Yes, I would.", ["Yes", "No"])
'Yes'
>>> parse_topk("Projects 3, 7 and 12", [str(i) for i in range(1, 25)], 3)
['3', '7', '12']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}
_WORD_ALT = "|".join(NUMBER_WORDS)
# a label that announces the answer ("Rating: 4", "score = 3", "Answer - B", "my rating is 2")
_LABEL = r"(?:rating|score|answer|choice|grade|verdict|selection|vote|label)"
_LABEL_RE = re.compile(rf"\b{_LABEL}\b\s*(?:is|would be|of)?\s*[:=\-]?\s*", re.IGNORECASE)
# "on a scale of 1 to 5", "(1-5)", "from 1 to 5", "1 = not at all": mentions of the scale, not answers
_SCALE_MENTION_RE = re.compile(
    r"(?:scale\s+(?:of|from)\s+)?(?:from\s+)?\b\d+\s*(?:to|-|–|through)\s*\d+\b(?!\s*/)"
    r"|\b\d+\s*=\s*[a-z]",
    re.IGNORECASE,
)
_NUM_RE = re.compile(rf"(?<![\w.])(-?\d+(?:\.\d+)?|{_WORD_ALT})(?![\w]|\.\d)", re.IGNORECASE)


def _clean(text: str) -> str:
    """Drop markdown emphasis and code marks, normalise whitespace."""
    text = re.sub(r"[*_`~]+", " ", text)
    return " ".join(text.split())


def _as_int(token: str) -> int | None:
    token = token.lower()
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[token]
    try:
        value = float(token)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def parse_rating(text: str | None, scale: tuple[int, int] = (1, 5)) -> int | None:
    """The integer rating on ``scale`` (inclusive) that ``text`` gives, else None.

    Order of evidence: a labelled answer ("Rating: 4", "my score is four"), a fraction over the top of the
    scale ("4/5", "4 out of 5"), then the first in-range number once mentions of the scale itself
    ("on a scale of 1 to 5", "1 = not offensive") are removed. Number words count only when labelled,
    written as a fraction, or standing alone, so "this one is rude" is not read as 1.
    A labelled answer outside the scale (or not an integer) gives None rather than a guess."""
    if text is None:
        return None
    lo, hi = int(scale[0]), int(scale[1])
    s = _clean(str(text))
    if not s:
        return None

    def in_scale(v: int | None) -> int | None:
        return v if v is not None and lo <= v <= hi else None

    # 1. labelled answer
    for m in _LABEL_RE.finditer(s):
        rest = s[m.end():]
        n = _NUM_RE.match(rest)
        if n:
            return in_scale(_as_int(n.group(1)))
    # 2. fraction over the scale top: "4/5", "4 / 5", "4 out of 5", "four out of five"
    frac = re.search(rf"(?<![\w.])(\d+(?:\.\d+)?|{_WORD_ALT})\s*(?:/|out of)\s*(\d+|{_WORD_ALT})\b", s, re.IGNORECASE)
    if frac and _as_int(frac.group(2)) == hi:
        return in_scale(_as_int(frac.group(1)))
    # 3. the text is just a number word or number (with punctuation)
    bare = s.strip(" .!:;,()[]'\"").lower()
    if bare in NUMBER_WORDS:
        return in_scale(NUMBER_WORDS[bare])
    # 4. first in-range digit number after removing scale mentions; words are not trusted here
    stripped = _SCALE_MENTION_RE.sub(" ", s)
    for m in _NUM_RE.finditer(stripped):
        token = m.group(1)
        if not token[0].isdigit() and token[0] != "-":
            continue
        value = in_scale(_as_int(token))
        if value is not None:
            return value
    return None


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s#-]", " ", s.lower()).split())


def parse_choice(text: str | None, choices: Sequence[str]) -> str | None:
    """The one choice from ``choices`` that ``text`` gives, else None (returns the choice as given).

    Numeric choice sets ("1".."5") are read like ratings. Otherwise: the whole text is a choice; a label
    ("Answer: B") is followed by one; the text starts with one; or exactly one distinct choice is mentioned
    as a whole word. Single-letter choices ("A", "B") must match in the same case, so the article "a" is
    not read as choice A. Two different choices mentioned with no label or lead gives None."""
    if text is None or not choices:
        return None
    choices = [str(c) for c in choices]
    s = _clean(str(text))
    if not s:
        return None
    numeric = [_as_int(c) for c in choices]
    if all(v is not None for v in numeric):
        ints = [int(v) for v in numeric if v is not None]
        value = parse_rating(s, (min(ints), max(ints)))
        if value is None:
            return None
        for c, v in zip(choices, ints, strict=True):
            if v == value:
                return c
        return None

    def pattern(c: str) -> re.Pattern[str]:
        flags = 0 if len(c.strip()) == 1 else re.IGNORECASE
        return re.compile(rf"(?<![\w]){re.escape(c.strip())}(?![\w])", flags)

    pats = [(c, pattern(c)) for c in choices]
    # the whole text is one choice
    whole = _norm(s)
    for c in choices:
        if whole == _norm(c):
            return c
    # a label followed by a choice
    for m in _LABEL_RE.finditer(s):
        rest = s[m.end():].lstrip(" \"'([")
        for c, p in sorted(pats, key=lambda cp: -len(cp[0])):
            hit = p.match(rest)
            if hit:
                return c
    # the text starts with a choice
    lead = s.lstrip(" \"'([")
    for c, p in sorted(pats, key=lambda cp: -len(cp[0])):
        if p.match(lead):
            return c
    # exactly one distinct choice mentioned (longer choices win over ones they contain)
    found: list[str] = []
    spans: list[tuple[int, int]] = []
    for c, p in sorted(pats, key=lambda cp: -len(cp[0])):
        for m in p.finditer(s):
            if any(a <= m.start() < b for a, b in spans):
                continue
            spans.append(m.span())
            if c not in found:
                found.append(c)
    return found[0] if len(found) == 1 else None


def _item_key(item: str) -> str:
    """'#03' / '3' / 'Project 3' -> '3'; other ids lowercased."""
    s = str(item).strip().lower()
    m = re.fullmatch(r"(?:project|item|option|no\.?|number)?\s*#?\s*0*(\d+)", s)
    if m:
        return m.group(1) or "0"
    return s


def parse_topk(text: str | None, items: Sequence[str], k: int | None) -> list[str] | None:
    """The ``k`` distinct items (as given in ``items``) that ``text`` selects, in the order written.

    Items are matched by number ("#3", "3", "Project 3" all match an item "#3" or "3") or, for non-numeric
    ids, as whole words. When the text marks ids with "#", only marked numbers count; phrases such as
    "top 5" or "of the 24" are ignored. Fewer or more than ``k`` distinct items gives None (``k=None``
    accepts any non-empty selection)."""
    if text is None or not items:
        return None
    s = _clean(str(text))
    by_key: dict[str, str] = {}
    for it in items:
        by_key.setdefault(_item_key(it), str(it))
    picked: list[str] = []

    def add(item: str) -> None:
        if item not in picked:
            picked.append(item)

    numeric_keys = {key for key in by_key if key.isdigit()}
    if numeric_keys:
        body = s
        label = list(_LABEL_RE.finditer(body))
        if label:
            body = body[label[-1].end():]
        marked = re.findall(r"#\s*0*(\d+)\b", body)
        if marked:
            numbers = [m or "0" for m in marked]
        else:
            body = re.sub(r"\btop[\s-]*\d+\b|\b(?:of|out of|among|from)\s+(?:the\s+|all\s+)?\d+\b"
                          r"|\b\d+\s+(?:projects|items|options|choices)\b|\b\d+\s*(?:chf|fr|francs|%)",
                          " ", body, flags=re.IGNORECASE)
            body = re.sub(r"\b\d[\d,']*\d{3}\b", " ", body)  # amounts such as 10,000
            numbers = [str(int(m)) for m in re.findall(r"(?<![\w.])(\d+)(?![\w.]\d)", body)]
        for key in numbers:
            if key in by_key:
                add(by_key[key])
    others = [(key, it) for key, it in by_key.items() if not key.isdigit()]
    if others:
        hits = []
        for key, it in others:
            m = re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", s, re.IGNORECASE)
            if m:
                hits.append((m.start(), it))
        for _, it in sorted(hits):
            add(it)
    if not picked:
        return None
    if k is not None and len(picked) != k:
        return None
    return picked

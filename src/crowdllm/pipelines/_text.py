"""Small text helpers the pipelines share: cleaning a worker's free-text answer, splitting lists, words.

Choice and rating parsing live in :mod:`crowdllm.llm.parsing` (the LLM layer's parsers); what is here
is specific to pipelines: model chatter around an answer ("Sure! Here is the rewritten text:"), list
answers (bullets, numbers, commas), and finding a copied phrase in a source text.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?|\n?```\s*$")
_PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|here(?:'s| is| are)|rewritten|revised|improved|new version|"
    r"answer|output|result|joke|text)\b[^\n]{0,80}:\s*(\n|$)", re.IGNORECASE)
_TRAILER = re.compile(r"\n\s*\n\s*(note|explanation|changes|this (?:version|rewrite))\b.*$",
                      re.IGNORECASE | re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*\u2022>]+|\(?\d{1,2}[.):]|\(?[a-zA-Z][.)])\s+")
_QUOTES = "\"'\u201c\u201d\u2018\u2019`\u00ab\u00bb"
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def clean_answer(text: str) -> str:
    """The answer itself: strip code fences, a one-line preamble, a trailing note, wrapping quotes."""
    out = _FENCE.sub("", text.strip()).strip()
    out = _PREAMBLE.sub("", out, count=1).strip()
    out = _TRAILER.sub("", out).strip()
    if len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
        out = out[1:-1].strip()
    return out


def strip_item(line: str) -> str:
    """One list item without its bullet or number, wrapping quotes, or trailing period."""
    item = _BULLET.sub("", line.strip()).strip()
    item = item.strip(_QUOTES).strip()
    item = re.sub(r"^\*\*(.+)\*\*$", r"\1", item).strip()
    return item.rstrip(".;,").strip()


def parse_list(text: str, max_items: int | None = None, *, max_words: int = 40,
               split_commas: bool = True) -> list[str]:
    """Items of a list answer: one per line (bullets/numbers removed); a single comma-separated line
    is split on commas (unless ``split_commas=False``). Preamble lines ending with ':', 'none' and
    overly long lines are dropped."""
    lines = [ln for ln in clean_answer(text).splitlines() if ln.strip()]
    if split_commas and len(lines) == 1 and lines[0].count(",") >= 2:
        lines = lines[0].split(",")
    items: list[str] = []
    for ln in lines:
        if ln.rstrip().endswith(":"):
            continue
        item = strip_item(ln)
        if not item or item.lower() in ("none", "n/a", "nothing") or len(item.split()) > max_words:
            continue
        if item.lower() not in (i.lower() for i in items):
            items.append(item)
        if max_items is not None and len(items) >= max_items:
            break
    return items


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return [w.lower() for w in _WORD.findall(text)]


def n_words(text: str) -> int:
    return len(_WORD.findall(text))


def locate(phrase: str, text: str) -> tuple[int, int] | None:
    """Character span of ``phrase`` inside ``text`` (exact, then case- and whitespace-insensitive)."""
    phrase = phrase.strip().strip(_QUOTES).strip()
    if not phrase:
        return None
    i = text.find(phrase)
    if i >= 0:
        return i, i + len(phrase)
    pattern = r"\s+".join(re.escape(p) for p in phrase.split())
    m = re.search(pattern, text, flags=re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def mentions(text: str, keyword: str) -> bool:
    """Whether ``text`` mentions ``keyword``: each keyword word appears as a word prefix (so 'pedal'
    matches 'pedals'), case-insensitive. Alternatives may be given as 'a|b'."""
    tokens = words(text)
    for alt in keyword.split("|"):
        kws = words(alt)
        if kws and all(any(t.startswith(k) for t in tokens) for k in kws):
            return True
    return False

"""Scores that do not ask any model: declared checks on an output, and the user's own inputs.

A check is a small declared goal that a program can verify. An input line may carry them::

    {"max_ratio": 0.6, "keep": ["Thursday", "catering"], "fix": {"tommorow": "tomorrow"}}

=============  ========================================================================================
check          passes when
=============  ========================================================================================
max_ratio      the output has at most this share of the input's words (0.6: at least 40 % shorter)
min_ratio      the output has at least this share of the input's words (nothing cut to the bone)
max_words      the output has at most this many words
keep           every listed word or phrase is still there ('a|b' for alternatives; word prefixes count)
avoid          none of the listed words or phrases is there
fix            every known error is fixed (the wrong form gone, the right one there) ...
unchanged      ... and nothing else changed: the output's words are the input's with the fixes applied
sections       the output has at least N headings (a number), or a heading for each listed name;
               no heading and no paragraph appears twice
order          the listed items are all mentioned, in this order
=============  ========================================================================================

``fix`` adds the ``unchanged`` check by itself (proofreading is "fix these and nothing else").
:func:`run_checks` returns one pass/fail per check and why a check failed; :func:`checks_for` gives
a built-in example's checks (declared in the example, or derived from its ``must_cover``,
``must_mention``, ``errors``, ``max_words`` and gold order).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdllm.errors import CrowdDataError
from crowdllm.pipelines._text import mentions, n_words, words

CHECKS = ("max_ratio", "min_ratio", "max_words", "keep", "avoid", "fix", "sections", "order")


class CheckError(ValueError):
    """A badly declared check (the message names the check)."""


def validate_checks(raw: Any) -> dict[str, Any]:
    """The checks of one input, type-checked (raises :class:`CheckError` naming the bad check)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CheckError("'checks' must be an object like {\"max_ratio\": 0.6, \"keep\": [\"Thursday\"]}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in CHECKS:
            raise CheckError(f"unknown check '{key}' (known: {', '.join(CHECKS)})")
        if key in ("max_ratio", "min_ratio"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 10:
                raise CheckError(f"check '{key}' must be a number in (0, 10], got {value!r}")
            out[key] = float(value)
        elif key == "max_words":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CheckError(f"check 'max_words' must be a whole number >= 1, got {value!r}")
            out[key] = value
        elif key in ("keep", "avoid", "order"):
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise CheckError(f"check '{key}' must be a non-empty list of words or phrases")
            out[key] = [v.strip() for v in value]
        elif key == "fix":
            if not isinstance(value, Mapping) or not value or not all(
                    isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in value.items()):
                raise CheckError("check 'fix' must be an object {\"wrong\": \"right\", ...}")
            out[key] = {k.strip(): v.strip() for k, v in value.items()}
        elif key == "sections":
            if isinstance(value, bool) or not (
                    (isinstance(value, int) and value >= 1)
                    or (isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value))):
                raise CheckError("check 'sections' must be a number >= 1 or a list of section names")
            out[key] = value
    return out


@dataclass
class CheckResult:
    """One check on one output."""

    name: str
    passed: bool
    why: str = ""


def run_checks(checks: Mapping[str, Any], original: str, output: str) -> list[CheckResult]:
    """Every declared check on ``output`` (``original`` is the input text, for ratios and fixes)."""
    out: list[CheckResult] = []
    n_in, n_out = n_words(original), n_words(output)
    ratio = n_out / n_in if n_in else float("inf")
    if "max_ratio" in checks:
        out.append(CheckResult("max_ratio", ratio <= checks["max_ratio"],
                               f"{n_out}/{n_in} words = {ratio:.2f} (at most {checks['max_ratio']:g})"))
    if "min_ratio" in checks:
        out.append(CheckResult("min_ratio", ratio >= checks["min_ratio"],
                               f"{n_out}/{n_in} words = {ratio:.2f} (at least {checks['min_ratio']:g})"))
    if "max_words" in checks:
        out.append(CheckResult("max_words", 0 < n_out <= checks["max_words"], f"{n_out} words"))
    if "keep" in checks:
        lost = [k for k in checks["keep"] if not mentions(output, k)]
        out.append(CheckResult("keep", not lost, "lost: " + ", ".join(lost) if lost else "all kept"))
    if "avoid" in checks:
        found = [k for k in checks["avoid"] if mentions(output, k)]
        out.append(CheckResult("avoid", not found, "still there: " + ", ".join(found) if found else "none there"))
    if "fix" in checks:
        fixes = checks["fix"]
        missed = [w for w, r in fixes.items() if has_phrase(output, w) or (r and not has_phrase(output, r))]
        out.append(CheckResult("fix", not missed, "not fixed: " + ", ".join(missed) if missed else "all fixed"))
        expected = words(apply_fixes(original, fixes))
        got = words(output)
        same = expected == got
        out.append(CheckResult("unchanged", same, "nothing else changed" if same else
                               f"other changes: {_first_difference(expected, got)}"))
    if "sections" in checks:
        out.append(_sections(checks["sections"], output))
    if "order" in checks:
        pos = [_first_mention(output, item) for item in checks["order"]]
        missing = [i for i, p in zip(checks["order"], pos, strict=True) if p is None]
        ok = not missing and all(a < b for a, b in zip(pos, pos[1:], strict=False))  # type: ignore[operator]
        out.append(CheckResult("order", ok, "missing: " + ", ".join(missing) if missing else
                               ("in order" if ok else "out of order")))
    return out


def has_phrase(text: str, phrase: str) -> bool:
    """Whether the words of ``phrase`` occur consecutively in ``text`` (case-insensitive)."""
    tw, pw = words(text), words(phrase)
    return any(tw[i:i + len(pw)] == pw for i in range(len(tw) - len(pw) + 1)) if pw else False


def apply_fixes(text: str, fixes: Mapping[str, str]) -> str:
    """``text`` with every wrong form replaced by the right one (whole words, case-insensitive)."""
    for wrong, right in fixes.items():
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(wrong)}(?![A-Za-z0-9])", right, text, flags=re.IGNORECASE)
    return text


def _first_difference(expected: list[str], got: list[str]) -> str:
    for i, (a, b) in enumerate(zip(expected, got, strict=False)):
        if a != b:
            return f"word {i + 1}: expected '{a}', got '{b}'"
    return f"{len(got)} words instead of {len(expected)}"


_HEADING = re.compile(r"^\s*(?:#{1,6}\s+(.+?)|\*\*(.+?)\*\*:?|([A-Z][^.!?\n]{0,60}):)\s*$", re.M)


def headings(text: str) -> list[str]:
    """Section headings of a text: Markdown '#' lines, '**bold**' lines, or short 'Title:' lines
    (the first '#' heading is the article's title when it is followed by '##' headings)."""
    found = [next(g for g in m.groups() if g).strip() for m in _HEADING.finditer(text)]
    if re.match(r"^\s*#\s", text) and re.search(r"^\s*##\s", text, re.M):
        found = found[1:]
    return found


def _sections(want: int | list[str], output: str) -> CheckResult:
    heads = headings(output)
    low = [h.lower() for h in heads]
    paragraphs = [" ".join(p.split()).lower() for p in re.split(r"\n\s*\n", output) if len(p.split()) >= 5]
    repeated = sorted({h for h in low if low.count(h) > 1}) + (["a paragraph"] if len(set(paragraphs))
                                                                 < len(paragraphs) else [])
    if isinstance(want, int):
        ok = len(heads) >= want and not repeated
        why = f"{len(heads)} heading(s) (at least {want})"
    else:
        counts = {s: sum(mentions(h, s) for h in heads) for s in want}
        missing = [s for s, c in counts.items() if c == 0]
        twice = [s for s, c in counts.items() if c > 1]
        repeated += twice
        ok = not missing and not repeated
        why = "missing: " + ", ".join(missing) if missing else "every section there"
    if repeated:
        why += "; repeated: " + ", ".join(repeated)
    return CheckResult("sections", ok, why)


def _first_mention(text: str, item: str) -> int | None:
    low = text.lower()
    hits = [m.start() for alt in item.split("|") if alt.strip()
            for m in [re.search(rf"(?<![a-z0-9]){re.escape(alt.strip().lower())}", low)] if m]
    return min(hits) if hits else None


# ---------------------------------------------------------------------- built-in examples
def checks_for(pipeline: str, example: Mapping[str, Any]) -> dict[str, Any]:
    """The checks of an example: its declared ``checks``, else derived from its evaluation fields."""
    if example.get("checks"):
        return validate_checks(example["checks"])
    out: dict[str, Any] = {}
    goal = str(example.get("goal", ""))
    if goal == "shorten":
        out["max_ratio"] = 0.8
    if example.get("errors"):
        out["fix"] = {str(w): str(r) for w, r in example["errors"]}
    keep = example.get("must_mention") or example.get("must_cover")
    if keep:
        out["keep"] = [str(k) for k in keep]
    if example.get("max_words"):
        out["max_words"] = int(example["max_words"])
    if pipeline == "map-reduce":
        out["sections"] = int(example.get("sections", 2))
    if pipeline == "humor" and example.get("keywords"):
        out["keep"] = ["|".join(str(k) for k in example["keywords"])]
    if pipeline == "break-it-down" and example.get("kind") == "sort" and example.get("gold"):
        out["order"] = [str(g) for g in example["gold"]]
    return out


def input_text(pipeline_input_key: str, example: Mapping[str, Any]) -> str:
    """The text an output is compared with for ratios and fixes (the input, for editing tasks)."""
    return str(example.get(pipeline_input_key) or example.get("text") or "")


# ---------------------------------------------------------------------- the user's own inputs
#: tasks a JSONL line may name, per pipeline: the task decides which example field the text fills
TASKS: dict[str, tuple[str, ...]] = {
    "find-fix-verify": ("shorten", "proofread", "polite", "improve"),
    "iterative": ("shorten", "proofread", "polite", "improve"),
    "map-reduce": ("article",),
    "humor": ("joke",),
    "price-divide-solve": ("plan", "solve"),
    "task-paraphrase": ("describe", "qa-srl"),
    "break-it-down": ("sort", "questions"),
}
#: fields a line may carry besides id, text, task and checks (what the pipelines' examples read)
EXTRA_FIELDS = ("instruction", "items", "first", "gold", "questions", "document", "qa", "sections",
                "must_cover", "must_mention", "keywords", "max_words", "errors")


def load_inputs(path: str | Path, pipeline: str, input_key: str) -> list[dict[str, Any]]:
    """A user's inputs for ``pipeline`` from a JSONL file: one object per line with ``text``, ``task``
    and optional ``id`` and ``checks``. Raises :class:`CrowdDataError` naming the file and line."""
    p = Path(path)
    if not p.exists():
        raise CrowdDataError("no such inputs file", file=str(p))
    tasks = TASKS.get(pipeline, ())
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = p.read_text(encoding="utf-8").splitlines()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue

        def bad(msg: str, _no: int = no) -> CrowdDataError:
            return CrowdDataError(msg, file=f"{p}, line {_no}")

        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise bad(f"not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise bad("expected a JSON object like {\"text\": ..., \"task\": ...}")
        unknown = [k for k in obj if k not in ("id", "text", "task", "checks", *EXTRA_FIELDS)]
        if unknown:
            raise bad(f"unknown field '{unknown[0]}' (known: id, text, task, checks, {', '.join(EXTRA_FIELDS)})")
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad("'text' must be a non-empty string")
        task = obj.get("task")
        if task not in tasks:
            raise bad(f"'task' must be one of {', '.join(tasks)} for pipeline {pipeline}, got {task!r}")
        try:
            checks = validate_checks(obj.get("checks"))
        except CheckError as err:
            raise bad(str(err)) from None
        ident = str(obj.get("id") or f"line{no}")
        if ident in seen:
            raise bad(f"id '{ident}' is used twice")
        seen.add(ident)
        ex: dict[str, Any] = {k: obj[k] for k in EXTRA_FIELDS if k in obj}
        ex.update({"id": ident, input_key: text.strip(), "checks": checks, "task_name": task})
        if pipeline in ("find-fix-verify", "iterative"):
            ex["goal"] = task
        if pipeline == "break-it-down":
            ex["kind"] = task
            need = ("items", "first") if task == "sort" else ("document", "questions")
            missing = [k for k in need if not ex.get(k)]
            if missing:
                raise bad(f"a '{task}' job needs {' and '.join(missing)}")
        out.append(ex)
    if not out:
        raise CrowdDataError("no inputs (the file is empty)", file=str(p))
    return out


def summarise_checks(results: Sequence[CheckResult]) -> dict[str, Any]:
    """Counts for a table: passed, total, share, and the failed checks with why."""
    passed = sum(r.passed for r in results)
    return {"checks_passed": passed, "checks_total": len(results),
            "checks": passed / len(results) if results else float("nan"),
            "failed": "; ".join(f"{r.name} ({r.why})" for r in results if not r.passed)}

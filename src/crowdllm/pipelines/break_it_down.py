"""Microtasks vs a macrotask (Break It Down; Cheng et al., CHI 2015).

The same job, done two ways:

- **microtasks** (the pipeline): the job is cut into the smallest decisions, each answered by a small
  crowd and settled by a vote. A sorting job becomes pairwise comparisons ("which is lighter?")
  inside a merge sort; a question sheet becomes one question per microtask.
- **macrotask** (variant ``macro``): each worker of the same-sized crowd does the whole job in one go;
  the crowd's answers are combined (Borda count for orders, a vote per question).
- the **baseline** is the macrotask done once by a single model.

Jobs are JSON examples: ``{"kind": "sort", "job", "items", "first", "gold"}`` or
``{"kind": "questions", "job", "document", "questions", "gold"}``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from crowdllm.errors import ConfigError
from crowdllm.pipelines._text import clean_answer, mentions, parse_list, words
from crowdllm.pipelines.evaluation import Evaluator, answer_matches, pairwise_order_accuracy
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import decide, single_answer, vote

ROLE = "You are a careful crowd worker. You answer exactly what is asked, briefly."


def _kind(example: Example) -> str:
    kind = str(example.get("kind", ""))
    need = {"sort": ("items", "first"), "questions": ("document", "questions")}
    if kind not in need:
        raise ConfigError(f"break-it-down example '{example.get('id', '?')}' needs kind 'sort' or 'questions'")
    missing = [k for k in need[kind] if not example.get(k)]
    if missing:
        raise ConfigError(f"break-it-down example '{example.get('id', '?')}' lacks {', '.join(missing)}")
    return kind


# ---------------------------------------------------------------------- microtasks (the pipeline)
def run(run: Run, example: Example, s: Settings) -> list[str]:
    if _kind(example) == "sort":
        return _micro_sort(run, example, s)
    return _micro_questions(run, example, s)


def _micro_sort(run: Run, example: Example, s: Settings) -> list[str]:
    items = [str(i) for i in example["items"]]
    question = str(example["first"])
    memo: dict[tuple[str, str], bool] = {}

    def comes_first(a: str, b: str) -> bool:
        if (a, b) not in memo:
            with run.step(f"compare {len(memo) + 1}"):
                voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="voter")
                result = vote(run, voters, question, [a, b], task="compare")
                memo[(a, b)] = decide(run, result, default="0", what=f"'{a}' vs '{b}'") == "0"
                memo[(b, a)] = not memo[(a, b)]
        return memo[(a, b)]

    def merge_sort(xs: list[str]) -> list[str]:
        if len(xs) <= 1:
            return xs
        left, right = merge_sort(xs[: len(xs) // 2]), merge_sort(xs[len(xs) // 2:])
        out: list[str] = []
        while left and right:
            out.append(left.pop(0) if comes_first(left[0], right[0]) else right.pop(0))
        merged = out + left + right
        run.keep(merged + [x for x in items if x not in merged], "partial order so far")
        return merged

    order = merge_sort(items)
    run.details["comparisons"] = len(memo) // 2
    return order


def _micro_questions(run: Run, example: Example, s: Settings) -> list[str]:
    answers: list[str] = []
    for i, q in enumerate(example["questions"]):
        with run.step(f"question {i + 1}"):
            workers = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="worker")
            ask = f"Text:\n{example['document']}\n\nQuestion: {q}\nAnswer in a few words only."
            replies = [clean_answer(a).splitlines()[0] if clean_answer(a) else ""
                       for a in run.ask_each(workers, ask, task="answer", max_tokens=32)]
            answers.append(_plurality(run, replies, f"question {i + 1}"))
        run.keep(answers + [""] * (len(example["questions"]) - len(answers)), f"{i + 1} question(s) answered")
    return answers


def _norm(answer: str) -> str:
    return " ".join(w for w in words(answer) if w not in ("a", "an", "the"))


def _plurality(run: Run, replies: Sequence[str], what: str) -> str:
    """The most common answer (normalised); ties go to the shortest of the leaders, with a note."""
    counts = Counter(_norm(r) for r in replies if _norm(r))
    if not counts:
        run.note(f"{what}: no usable answer")
        return ""
    top = max(counts.values())
    leaders = [k for k, c in counts.items() if c == top]
    if len(leaders) > 1:
        run.note(f"{what}: tie between {len(leaders)} answers; the shortest is kept", answers=leaders)
    best = min(leaders, key=len)
    original = next(r for r in replies if _norm(r) == best)
    run.record("vote", question=what, options=list(counts), tally=dict(counts), winner=original)
    return original


# ---------------------------------------------------------------------- the macrotask
def _macro_ask(example: Example) -> str:
    if _kind(example) == "sort":
        listing = "\n".join(f"- {i}" for i in example["items"])
        return f"{example['job']}\n\n{listing}\n\nReply with the ordered list only, one item per line."
    listing = "\n".join(f"{i + 1}. {q}" for i, q in enumerate(example["questions"]))
    return (f"Text:\n{example['document']}\n\nAnswer each question in a few words.\n{listing}\n\n"
            "Reply with one line per question, in the same order, like:\n1. <answer>\n2. <answer>")


def _parse_macro(example: Example, text: str) -> list[str]:
    if _kind(example) == "sort":
        items = [str(i) for i in example["items"]]
        order: list[str] = []
        for line in parse_list(text, max_items=len(items) * 2):
            match = next((i for i in items if i.lower() == line.lower()), None) or \
                next((i for i in items if mentions(line, i)), None)
            if match and match not in order:
                order.append(match)
        return order
    n = len(example["questions"])
    numbered: dict[int, str] = {}
    loose: list[str] = []
    for line in clean_answer(text).splitlines():
        m = re.match(r"^\s*(\d{1,2})[.):]\s*(.+)$", line)
        if m and 1 <= int(m.group(1)) <= n:
            numbered.setdefault(int(m.group(1)), m.group(2).strip())
        elif line.strip():
            loose.append(line.strip())
    if numbered:
        return [numbered.get(i + 1, "") for i in range(n)]
    return (loose + [""] * n)[:n]


def macro(run: Run, example: Example, s: Settings) -> list[str]:
    workers = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="worker")
    with run.step("whole job"):
        replies = run.ask_each(workers, _macro_ask(example), task="whole job", max_tokens=s.max_tokens)
    parsed = [_parse_macro(example, r) for r in replies]
    with run.step("combine"):
        if _kind(example) == "sort":
            items = [str(i) for i in example["items"]]
            rank = {i: sum(p.index(i) if i in p else len(items) for p in parsed) for i in items}
            out = sorted(items, key=lambda i: rank[i])  # Borda count (stable for equal ranks)
            run.record("vote", question="Borda count (sum of positions)", tally=rank, winner=out)
        else:
            out = [_plurality(run, [p[i] for p in parsed], f"question {i + 1}")
                   for i in range(len(example["questions"]))]
    return out


def baseline(run: Run, example: Example, s: Settings) -> list[str]:
    return _parse_macro(example, single_answer(run, ROLE, _macro_ask(example), task="whole job",
                                               max_tokens=s.max_tokens))


# ---------------------------------------------------------------------- evaluation
def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    out = list(output or [])
    gold = list(example.get("gold") or [])
    if _kind(example) == "sort":
        return {"quality": pairwise_order_accuracy(out, gold), "answered": len(out) == len(gold)}
    right = [answer_matches(p, g) for p, g in zip(out + [""] * len(gold), gold, strict=False)]
    return {"quality": sum(right) / len(gold) if gold else float("nan"), "answered": bool(out) and all(out)}


def render(output: Any) -> str:
    return "\n".join(f"{i + 1}. {x}" for i, x in enumerate(output or []))


def _empty(example: Example) -> list[str]:
    return []


SPEC = PipelineSpec(
    name="break-it-down",
    title="Microtasks vs a macrotask",
    reference="Break It Down, Cheng et al. 2015",
    summary="the same job as voted microtasks (pipeline), as a crowd macrotask ('macro'), and as one prompt",
    input_key="job",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=render,
    empty=_empty,
    uses=("workers", "voters", "max_tokens", "temperature"),
    variants={"macro": macro},
    judged=False,
    metrics=("answered", "comparisons"),
)

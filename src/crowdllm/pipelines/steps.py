"""Microtask steps and crowd steps: the blocks the seven pipelines are built from.

Microtasks (one prompt each, answered by one or several workers):

- :func:`write` - generate or edit text (one answer per worker, cleaned; empty answers dropped);
- :func:`list_items` - a list answer (ideas, subtasks, section headings);
- :func:`find_spans` - workers point at numbered parts of a text; a part is kept when >= ``agree`` agree;
- :func:`vote` - choose one of several options (order shuffled per worker against position bias);
- :func:`verify` - a yes/no question;
- :func:`compare` - the better of two texts;
- :func:`rate` - a rating on a scale;
- :func:`solve_or_split` - decide whether a task is small enough to solve directly.

Crowd aggregation: :func:`tally` (plurality vote with ties reported, not hidden), :func:`agreed`
(items named by at least k workers), the mean of ratings. Every answer, vote and decision goes into
the run's trace; a worker whose answer cannot be parsed abstains (and the trace says so).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from crowdllm.llm.parsing import parse_choice, parse_rating
from crowdllm.pipelines._text import clean_answer, parse_list
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.worker import Worker


# ---------------------------------------------------------------------- aggregation
@dataclass
class VoteResult:
    """The outcome of a crowd vote. ``winner`` is None on a tie or when every worker abstained."""

    question: str
    options: list[str]
    votes: dict[str, str | None]
    tally: dict[str, int]
    winner: str | None
    tie: bool

    @property
    def valid(self) -> int:
        return sum(self.tally.values())

    def share(self, option: str) -> float:
        return self.tally.get(option, 0) / self.valid if self.valid else float("nan")

    @property
    def unanimous(self) -> bool:
        return self.valid > 0 and max(self.tally.values()) == self.valid


def tally(votes: dict[str, str | None], options: Sequence[str]) -> tuple[dict[str, int], str | None, bool]:
    """Plurality: (counts per option, winner or None, whether the top count is shared)."""
    counts = {o: 0 for o in options}
    for v in votes.values():
        if v is not None:
            counts[v] += 1
    top = max(counts.values()) if counts else 0
    leaders = [o for o, c in counts.items() if c == top]
    if top == 0:
        return counts, None, False
    if len(leaders) > 1:
        return counts, None, True
    return counts, leaders[0], False


def agreed(items_by_worker: dict[str, Sequence[str]], k: int) -> list[str]:
    """Items (case-insensitive) named by at least ``k`` different workers, in first-seen order."""
    seen: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for items in items_by_worker.values():
        for key in {i.strip().lower() for i in items if i.strip()}:
            counts[key] += 1
        for i in items:
            seen.setdefault(i.strip().lower(), i.strip())
    return [seen[key] for key in seen if counts[key] >= k]


def decide(run: Run, result: VoteResult, *, default: str, what: str) -> str:
    """The vote's winner, or ``default`` on a tie / no valid vote (with a note saying so)."""
    if result.winner is not None:
        return result.winner
    why = "tie" if result.tie else "no usable vote"
    run.note(f"{what}: {why} ({_fmt_tally(result.tally)}); chose '{default}'", tally=result.tally)
    return default


def _fmt_tally(t: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in t.items())


# ---------------------------------------------------------------------- microtasks
def write(run: Run, workers: Sequence[Worker], content: str | Sequence[str], *, task: str,
          max_tokens: int | None = None) -> list[str]:
    """Each worker's cleaned text answer; empty answers are dropped (and noted)."""
    answers = run.ask_each(workers, content, task=task, max_tokens=max_tokens)
    out = []
    for w, a in zip(workers, answers, strict=True):
        text = clean_answer(a)
        if text:
            out.append(text)
        else:
            run.note(f"{task}: {w.name} gave an empty answer; dropped", worker=w.name)
    return out


def list_items(run: Run, worker: Worker, content: str, *, task: str, max_items: int,
               max_tokens: int | None = None) -> list[str]:
    """A list answer from one worker, as items."""
    items = parse_list(run.ask(worker, content, task=task, max_tokens=max_tokens), max_items)
    run.record("decision", what=task, value=items)
    return items


_DELIM = re.compile(r"[,;:!?\n]|\.(?=\s|$)")


def segments(text: str) -> list[tuple[int, int]]:
    """The parts of ``text`` a worker can point at: clauses between punctuation marks and line
    breaks, as (start, end) without the surrounding spaces and punctuation."""
    out, start = [], 0
    for m in [*_DELIM.finditer(text), None]:
        end = m.start() if m else len(text)
        chunk = text[start:end]
        if chunk.strip() and any(ch.isalnum() for ch in chunk):
            lead = len(chunk) - len(chunk.lstrip())
            out.append((start + lead, start + len(chunk.rstrip())))
        start = m.end() if m else len(text)
    return out


def find_spans(run: Run, workers: Sequence[Worker], text: str, instruction: str, *, agree: int,
               max_spans: int = 3) -> list[tuple[int, int]]:
    """Parts of ``text`` that at least ``agree`` workers point at.

    The text is shown whole and cut into numbered parts (:func:`segments`); each worker names the
    numbers of up to three parts that need work (the on-screen highlighting of Soylent's Find, as a
    selection a small model can make reliably). Numbers out of range are dropped as garbage; parts
    named by >= ``agree`` workers are returned in text order, at most ``max_spans`` (most votes first).
    As in Soylent, every worker must name at least one part: "nothing to do" is left to the vote."""
    parts = segments(text)
    if not parts:
        return []
    listing = "\n".join(f"{i + 1}. {text[a:b]}" for i, (a, b) in enumerate(parts))
    content = (f"Text:\n{text}\n\nThe same text in numbered parts:\n{listing}\n\n{instruction}\n"
               "Name at least one and at most 3 parts: answer with their numbers only (for example: 2, 3).")
    answers = run.ask_each(workers, content, task="find", max_tokens=16)
    votes: Counter[int] = Counter()
    marks: dict[str, list[int]] = {}
    for w, a in zip(workers, answers, strict=True):
        numbers = [int(x) for x in re.findall(r"(?<![\d.])\d{1,3}(?!\d|\.\d)", a)]
        picked = sorted({n for n in numbers if 1 <= n <= len(parts)})[:3]
        if not numbers:
            run.note(f"find: {w.name} named no part; abstained", worker=w.name)
        elif len(picked) < len(set(numbers)):
            run.note(f"find: {w.name} named part numbers that do not exist; ignored", worker=w.name, answer=a)
        marks[w.name] = picked
        votes.update(picked)
    chosen = sorted((n for n, c in votes.items() if c >= agree), key=lambda n: (-votes[n], n))[:max_spans]
    regions = [parts[n - 1] for n in sorted(chosen)]
    run.record("vote", question="find", options=list(range(1, len(parts) + 1)), votes=marks, agree=agree,
               kept=[text[a:b] for a, b in regions])
    return regions


def vote(run: Run, workers: Sequence[Worker], question: str, options: Sequence[str], *, task: str,
         shuffle: bool = True, by_name: bool | None = None) -> VoteResult:
    """Each worker picks one of ``options``, shown in a shuffled order per worker (against position
    bias). Short options (a word or a name) are listed as they are and answered by copying one: a
    small model picks between "horse" and "mouse" far more reliably than between "A" and "B".
    Longer options are lettered A, B, ... and answered with a letter; ``by_name=False`` letters any
    options (versions of a text, which a voter should judge, not echo).
    Returns the tally over option *indices* as strings "0", "1", ..."""
    by_name = _short_options(options) if by_name is None else (by_name and _short_options(options))
    labels = string.ascii_uppercase[: len(options)]
    contents, orders = [], []
    for _ in workers:
        order = list(run.rng.permutation(len(options))) if shuffle else list(range(len(options)))
        orders.append(order)
        if by_name:
            listing = "\n".join(f"- {options[i]}" for i in order)
            contents.append(f"{question}\n\n{listing}\n\nAnswer with one of them, copied exactly.")
        else:
            listing = "\n\n".join(f"{labels[j]}) {options[i]}" for j, i in enumerate(order))
            contents.append(f"{question}\n\n{listing}\n\nAnswer with one letter only ({', '.join(labels)}).")
    answers = run.ask_each(workers, contents, task=task, max_tokens=16 if by_name else 8)
    keys = [str(i) for i in range(len(options))]
    votes: dict[str, str | None] = {}
    for w, a, order in zip(workers, answers, orders, strict=True):
        if by_name:
            picked = parse_choice(a.strip()[:80], list(options))
            votes[w.name] = None if picked is None else str(list(options).index(picked))
        else:
            letter = parse_choice(a.strip()[:40], list(labels))
            votes[w.name] = None if letter is None else str(order[labels.index(letter)])
    return _finish(run, question, keys, votes, task, labels=[_snippet(o) for o in options])


def _short_options(options: Sequence[str]) -> bool:
    """Options a worker can copy: short, one line, distinct ignoring case, none inside another."""
    low = [" ".join(o.lower().split()) for o in options]
    return (all(0 < len(o) <= 40 and "\n" not in o for o in options) and len(set(low)) == len(low)
            and not any(a != b and a in b for a in low for b in low))


def verify(run: Run, workers: Sequence[Worker], question: str, *, task: str) -> VoteResult:
    """A yes/no vote."""
    answers = run.ask_each(workers, f"{question}\nAnswer yes or no.", task=task, max_tokens=8)
    votes = {w.name: parse_choice(a.strip()[:40], ["yes", "no"]) for w, a in zip(workers, answers, strict=True)}
    return _finish(run, question, ["yes", "no"], votes, task)


def compare(run: Run, workers: Sequence[Worker], criterion: str, first: str, second: str, *,
            task: str) -> VoteResult:
    """Which of two versions of a text is better by ``criterion``: winner "0" (first) or "1" (second)."""
    return vote(run, workers, f"Which version is better? {criterion}", [first, second], task=task, by_name=False)


def solve_or_split(run: Run, workers: Sequence[Worker], job: str) -> VoteResult:
    """Vote "solve" (small enough to do in one short answer) or "split" (divide into subtasks)."""
    q = (f"Task: {job}\n\nCan one person do this task well in a single short answer (SOLVE), or should "
         "it be divided into smaller subtasks first (SPLIT)?\nAnswer SOLVE or SPLIT.")
    answers = run.ask_each(workers, q, task="solve-or-split", max_tokens=8)
    votes = {w.name: parse_choice(a.strip()[:40], ["solve", "split"]) for w, a in zip(workers, answers, strict=True)}
    return _finish(run, "solve or split", ["solve", "split"], votes, "solve-or-split")


@dataclass
class RatingResult:
    question: str
    ratings: dict[str, int | None]
    mean: float
    valid: int = field(default=0)


def rate(run: Run, workers: Sequence[Worker], question: str, text: str, *, task: str,
         low: int = 1, high: int = 5) -> RatingResult:
    """Each worker rates ``text`` on ``low..high``; unparseable answers abstain. Mean over valid ratings."""
    content = f"{question}\n\n{text}\n\nAnswer with one number from {low} to {high}."
    answers = run.ask_each(workers, content, task=task, max_tokens=8)
    ratings = {w.name: parse_rating(a.strip()[:60], (low, high)) for w, a in zip(workers, answers, strict=True)}
    valid = [r for r in ratings.values() if r is not None]
    mean = float(np.mean(valid)) if valid else float("nan")
    abstained = [k for k, r in ratings.items() if r is None]
    if abstained:
        run.note(f"{task}: {len(abstained)} rating(s) unusable; abstained", workers=abstained)
    run.record("vote", question=question, options=list(range(low, high + 1)), votes=ratings,
               mean=None if not valid else round(mean, 3))
    return RatingResult(question=question, ratings=ratings, mean=mean, valid=len(valid))


def _snippet(text: str, width: int = 40) -> str:
    s = " ".join(text.split())
    return s if len(s) <= width else s[: width - 1] + "\u2026"


def _finish(run: Run, question: str, options: list[str], votes: dict[str, str | None], task: str,
            labels: list[str] | None = None) -> VoteResult:
    counts, winner, tie = tally(votes, options)
    abstained = [k for k, v in votes.items() if v is None]
    if abstained:
        run.note(f"{task}: {len(abstained)} answer(s) unusable; abstained", workers=abstained)
    extra = {"labels": dict(zip(options, labels, strict=True))} if labels else {}
    run.record("vote", question=question, options=options, votes=votes, tally=counts, winner=winner,
               tie=tie, **extra)
    return VoteResult(question=question, options=options, votes=votes, tally=counts, winner=winner, tie=tie)

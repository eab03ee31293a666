"""Microtask steps and crowd steps: the blocks the seven pipelines are built from.

Microtasks (one prompt each, answered by one or several workers):

- :func:`write` - generate or edit text (one answer per worker, cleaned; empty answers dropped);
- :func:`list_items` - a list answer (ideas, subtasks, section headings);
- :func:`find_spans` - workers point at numbered parts of a text; a part is kept when >= ``agree`` agree;
- :func:`vote` - choose one of several options (order shuffled per worker against position bias);
- :func:`verify` - a yes/no question;
- :func:`compare` - the better of two texts;
- :func:`rate` - a rating on a scale;
- :func:`solve_or_split` - decide whether a task is small enough to solve directly;
- :func:`single_answer` / :func:`single_rewrite` - the single-LLM baseline: one worker does the whole job.

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
from crowdllm.pipelines.parse import parse_option, parse_parts
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


def single_answer(run: Run, role: str, content: str, *, task: str, max_tokens: int | None = None) -> str:
    """A baseline's one call: one worker in ``role`` at temperature 0 (named ``single...``) answers the
    whole job in ``content``. The raw answer: each baseline reads it its own way."""
    worker = run.workers(1, role, temperature=0.0, prefix="single")[0]
    return run.ask(worker, content, task=task, max_tokens=max_tokens)


def single_rewrite(run: Run, role: str, content: str, original: str, *, task: str,
                   max_tokens: int | None = None) -> str:
    """An editing pipeline's baseline: the cleaned :func:`single_answer`, or ``original`` (noted) when
    that answer is empty."""
    answer = clean_answer(single_answer(run, role, content, task=task, max_tokens=max_tokens))
    if not answer:
        run.note(f"{task}: empty answer; returning the original")
        return original
    return answer


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


#: Find's declared fallback: when the finders between them named every part but no part reached the
#: agreement threshold, a text of at most this many parts is worked on whole (the union of the named
#: parts, most-named first, up to ``max_spans``); a longer text is left unchanged. Both are noted.
SHORT_TEXT_PARTS = 4


def find_spans(run: Run, workers: Sequence[Worker], text: str, instruction: str, *, agree: int,
               max_spans: int = 3) -> list[tuple[int, int]]:
    """Parts of ``text`` that at least ``agree`` workers point at.

    The text is shown whole and cut into numbered parts (:func:`segments`); each worker names the
    parts that need work (the on-screen highlighting of Soylent's Find, as a selection a small model
    can make reliably). Answers are read by :func:`crowdllm.pipelines.parse.parse_parts`: numbers,
    ranges, "parts 1 and 3", parts quoted back, "all of them" (every part) and "none" (no part).
    Numbers out of range are dropped as garbage; parts named by >= ``agree`` workers are returned in
    text order, at most ``max_spans`` (most votes first). When the workers between them named every
    part but none reached agreement, the declared fallback applies (:data:`SHORT_TEXT_PARTS`)."""
    parts = segments(text)
    if not parts:
        return []
    texts = [text[a:b] for a, b in parts]
    listing = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))
    content = (f"Text:\n{text}\n\nThe same text in numbered parts:\n{listing}\n\n{instruction}\n"
               "Name at least one and at most 3 parts: answer with their numbers only (for example: 2, 3).")
    answers = run.ask_each(workers, content, task="find", max_tokens=24)
    votes: Counter[int] = Counter()
    marks: dict[str, list[int]] = {}
    said: dict[str, str] = {}
    for w, a in zip(workers, answers, strict=True):
        read = parse_parts(a, texts)
        said[w.name] = read.kind if read.kind != "numbers" else read.how
        if read.out_of_range:
            run.note(f"find: {w.name} named part numbers that do not exist; ignored", worker=w.name, answer=a)
        if not read.usable:
            run.note(f"find: {w.name} named no part; abstained", worker=w.name, answer=a)
        elif read.kind == "none":
            run.note(f"find: {w.name} said no part needs work", worker=w.name)
        elif read.kind == "all":
            run.note(f"find: {w.name} named every part", worker=w.name)
        marks[w.name] = sorted(read.numbers)
        votes.update(read.numbers)
    chosen = sorted((n for n, c in votes.items() if c >= agree), key=lambda n: (-votes[n], n))[:max_spans]
    rule = None
    if not chosen and votes and set(votes) == set(range(1, len(parts) + 1)):
        if len(parts) <= SHORT_TEXT_PARTS:
            chosen = sorted(votes, key=lambda n: (-votes[n], n))[:max_spans]
            rule = "union"
            run.note(f"find: the workers named every part between them but none reached agreement of {agree}; "
                     f"the text is short ({len(parts)} parts <= {SHORT_TEXT_PARTS}), so the named parts are "
                     f"worked on (union, most-named first, at most {max_spans})", votes=dict(votes))
        else:
            rule = "unchanged"
            run.note(f"find: the workers named every part between them but none reached agreement of {agree}; "
                     f"the text is long ({len(parts)} parts > {SHORT_TEXT_PARTS}), so it is left as it is",
                     votes=dict(votes))
    regions = [parts[n - 1] for n in sorted(chosen)]
    run.record("vote", question="find", options=list(range(1, len(parts) + 1)), votes=marks, read=said,
               agree=agree, fallback=rule, kept=[text[a:b] for a, b in regions])
    return regions


def balanced_orders(run: Run, n_workers: int, n_options: int) -> list[list[int]]:
    """The order each worker sees the options in: for two options the two orders alternate (from a
    random start), so each is shown to half the crowd; for more, a random permutation per worker."""
    if n_options == 2:
        start = int(run.rng.integers(2))
        return [[0, 1] if (start + i) % 2 == 0 else [1, 0] for i in range(n_workers)]
    return [[int(x) for x in run.rng.permutation(n_options)] for _ in range(n_workers)]


def vote(run: Run, workers: Sequence[Worker], question: str, options: Sequence[str], *, task: str,
         shuffle: bool = True, by_name: bool | None = None) -> VoteResult:
    """Each worker picks one of ``options``, shown in a counterbalanced order per worker (against
    position bias; :func:`balanced_orders`, recorded in the trace). Short options (a word or a name)
    are listed as they are and answered by copying one: a small model picks between "horse" and
    "mouse" far more reliably than between "A" and "B". Longer options are lettered A, B, ... and
    answered with a letter (or by quoting the option back); ``by_name=False`` letters any options
    (versions of a text, which a voter should judge, not echo).
    Returns the tally over option *indices* as strings "0", "1", ..."""
    by_name = _short_options(options) if by_name is None else (by_name and _short_options(options))
    orders = balanced_orders(run, len(workers), len(options)) if shuffle else \
        [list(range(len(options))) for _ in workers]
    contents = [_vote_prompt(question, options, order, by_name) for order in orders]
    answers = run.ask_each(workers, contents, task=task, max_tokens=16 if by_name else 8)
    keys = [str(i) for i in range(len(options))]
    votes: dict[str, str | None] = {}
    for w, a, order in zip(workers, answers, orders, strict=True):
        picked = _read_vote(a, options, order, by_name)
        votes[w.name] = None if picked is None else str(picked)
    return _finish(run, question, keys, votes, task, labels=[_snippet(o) for o in options],
                   orders={w.name: o for w, o in zip(workers, orders, strict=True)})


def _vote_prompt(question: str, options: Sequence[str], order: Sequence[int], by_name: bool) -> str:
    labels = string.ascii_uppercase[: len(options)]
    if by_name:
        listing = "\n".join(f"- {options[i]}" for i in order)
        return f"{question}\n\n{listing}\n\nAnswer with one of them, copied exactly."
    listing = "\n\n".join(f"{labels[j]}) {options[i]}" for j, i in enumerate(order))
    return f"{question}\n\n{listing}\n\nAnswer with one letter only ({', '.join(labels)})."


def _read_vote(answer: str, options: Sequence[str], order: Sequence[int], by_name: bool) -> int | None:
    """The option index a vote answer names (a copied option, a letter, or an option quoted back)."""
    if by_name:
        picked = parse_choice(answer.strip()[:80], list(options))
        return None if picked is None else list(options).index(picked)
    labels = list(string.ascii_uppercase[: len(options)])
    letter = parse_choice(answer.strip()[:40], labels)
    if letter is not None:
        return order[labels.index(letter)]
    return parse_option(answer, options)


def _short_options(options: Sequence[str]) -> bool:
    """Options a worker can copy: short, one line, distinct ignoring case, none inside another."""
    low = [" ".join(o.lower().split()) for o in options]
    return (all(0 < len(o) <= 40 and "\n" not in o for o in options) and len(set(low)) == len(low)
            and not any(a != b and a in b for a in low for b in low))


def _either_or(run: Run, workers: Sequence[Worker], words: tuple[str, str]) -> list[tuple[str, str]]:
    """The order two answer words are offered in, per worker (alternating from a random start)."""
    return [tuple(words[i] for i in order) for order in balanced_orders(run, len(workers), 2)]  # type: ignore[misc]


def verify(run: Run, workers: Sequence[Worker], question: str, *, task: str) -> VoteResult:
    """A yes/no vote; half the voters are offered "yes or no", half "no or yes" (recorded)."""
    offered = _either_or(run, workers, ("yes", "no"))
    contents = [f"{question}\nAnswer {a} or {b}." for a, b in offered]
    answers = run.ask_each(workers, contents, task=task, max_tokens=8)
    votes = {w.name: parse_choice(a.strip()[:40], ["yes", "no"]) for w, a in zip(workers, answers, strict=True)}
    return _finish(run, question, ["yes", "no"], votes, task,
                   orders={w.name: list(o) for w, o in zip(workers, offered, strict=True)})


def compare(run: Run, workers: Sequence[Worker], criterion: str, first: str, second: str, *,
            task: str, by: str = "answers") -> VoteResult:
    """Which of two versions of a text is better by ``criterion``: winner "0" (first) or "1" (second).

    Counterbalanced: every voter sees both orders (first as A, then first as B). With
    ``by="answers"`` (sampled answers) a voter's vote counts only when it picks the same *text* both
    times; a voter who picks the same *letter* both times follows position, not content, and
    abstains (as does one whose answer cannot be read). With ``by="logprobs"`` each voter's
    probability of each letter is read in both orders and averaged per text, so a constant lean
    towards one letter cancels out; the text with the higher mean wins that voter's vote (equal
    means abstain). The trace records both answers (or probabilities) of every voter."""
    question = f"Which version is better? {criterion}"
    options = [first, second]
    if by == "logprobs":
        return _compare_by_logprobs(run, workers, question, options, task)
    if by == "checklist":
        return _compare_by_checklist(run, workers, question, options, task)
    if by != "answers":
        raise ValueError(f"compare by '{by}': use 'answers', 'logprobs' or 'checklist'")
    crowd = [w for w in workers for _ in range(2)]
    orders = [[0, 1], [1, 0]] * len(workers)
    contents = [_vote_prompt(question, options, order, False) for order in orders]
    answers = run.ask_each(crowd, contents, task=task, max_tokens=8)
    votes: dict[str, str | None] = {}
    picks: dict[str, list[int | None]] = {}
    followed = unreadable = 0
    for i, w in enumerate(workers):
        a = _read_vote(answers[2 * i], options, orders[2 * i], False)
        b = _read_vote(answers[2 * i + 1], options, orders[2 * i + 1], False)
        picks[w.name] = [a, b]
        if a is None or b is None:
            unreadable += 1
            votes[w.name] = None
        elif a != b:
            followed += 1
            votes[w.name] = None
        else:
            votes[w.name] = str(a)
    if followed:
        run.note(f"{task}: {followed} of {len(workers)} voter(s) picked the same position in both orders "
                 "(not the same text); not counted", workers=[k for k, v in picks.items()
                                                              if None not in v and v[0] != v[1]])
    return _finish(run, question, ["0", "1"], votes, task, labels=[_snippet(o) for o in options],
                   orders={"both": [[0, 1], [1, 0]]}, counterbalanced="both orders", picks=picks,
                   followed_position=followed, unreadable=unreadable)


def _compare_by_logprobs(run: Run, workers: Sequence[Worker], question: str, options: list[str],
                         task: str) -> VoteResult:
    orders = [[0, 1], [1, 0]]
    contents = [_vote_prompt(question, options, order, False) for order in orders]
    crowd = [w for w in workers for _ in orders]
    dists = run.choose(crowd, contents * len(workers), ["A", "B"], task=task)
    votes: dict[str, str | None] = {}
    means: dict[str, list[float]] = {}
    for i, w in enumerate(workers):
        d1, d2 = dists[2 * i], dists[2 * i + 1]
        # P(first text) in order [0, 1] is P(A); in order [1, 0] it is P(B)
        p_first = (float(d1.probs[0]) + float(d2.probs[1])) / 2
        means[w.name] = [round(p_first, 4), round(1 - p_first, 4)]
        votes[w.name] = None if abs(p_first - 0.5) < 1e-9 else ("0" if p_first > 0.5 else "1")
    return _finish(run, question, ["0", "1"], votes, task, labels=[_snippet(o) for o in options],
                   orders={"both": orders}, counterbalanced="both orders, log-probs averaged", probs=means,
                   followed_position=0, unreadable=sum(v is None for v in votes.values()))


#: ``compare(by="checklist")``: yes/no questions asked about each version on its own (no order to
#: follow), each with the answer that counts against the version
CHECKLIST = (
    ("Does this text contain any spelling mistakes or misspelled words?", "yes"),
    ("Does any sentence of this text contradict another sentence of it?", "yes"),
)


def _compare_by_checklist(run: Run, workers: Sequence[Worker], question: str, options: list[str],
                          task: str) -> VoteResult:
    """Each voter answers, by log-probabilities, the :data:`CHECKLIST` about each version alone, and
    whether each version states every fact of the other (asked both ways round, so neither is
    favoured by its place). A version's score: the expected number of checks it passes plus the
    probability it covers the other; the higher score gets the voter's vote (equal: abstain)."""
    contents: list[str] = []
    for text in options:
        contents += [f"Text:\n{text}\n\n{q}" for q, _ in CHECKLIST]
    for i, j in ((0, 1), (1, 0)):
        contents.append(f"Text 1:\n{options[i]}\n\nText 2:\n{options[j]}\n\n"
                        "Does Text 1 state every fact that Text 2 states?")
    contents = [f"{c}\nAnswer yes or no." for c in contents]
    crowd = [w for w in workers for _ in contents]
    dists = run.choose(crowd, contents * len(workers), ["yes", "no"], task=task)
    k = len(contents)
    votes: dict[str, str | None] = {}
    scores: dict[str, list[float]] = {}
    for n, w in enumerate(workers):
        d = dists[n * k:(n + 1) * k]
        score = [0.0, 0.0]
        for v in range(2):
            for c, (_, bad) in enumerate(CHECKLIST):
                p_yes = float(d[v * len(CHECKLIST) + c].probs[0])
                score[v] += (1 - p_yes) if bad == "yes" else p_yes
        covers = len(CHECKLIST) * 2
        score[0] += float(d[covers].probs[0])
        score[1] += float(d[covers + 1].probs[0])
        scores[w.name] = [round(x, 4) for x in score]
        votes[w.name] = None if abs(score[0] - score[1]) < 1e-9 else ("0" if score[0] > score[1] else "1")
    return _finish(run, question, ["0", "1"], votes, task, labels=[_snippet(o) for o in options],
                   orders={"each version alone": True}, counterbalanced="checklist, each version alone",
                   scores=scores, followed_position=0, unreadable=sum(v is None for v in votes.values()))


def solve_or_split(run: Run, workers: Sequence[Worker], job: str) -> VoteResult:
    """Vote "solve" (small enough to do in one short answer) or "split" (divide into subtasks); the two
    are offered in either order (half the voters each, recorded)."""
    say = {"solve": "can one person do this task well in a single short answer (SOLVE)",
           "split": "should it be divided into smaller subtasks first (SPLIT)"}
    offered = _either_or(run, workers, ("solve", "split"))
    contents = [f"Task: {job}\n\n{say[a][0].upper()}{say[a][1:]}, or {say[b]}?\n"
                f"Answer {a.upper()} or {b.upper()}." for a, b in offered]
    answers = run.ask_each(workers, contents, task="solve-or-split", max_tokens=8)
    votes = {w.name: parse_choice(a.strip()[:40], ["solve", "split"]) for w, a in zip(workers, answers, strict=True)}
    return _finish(run, "solve or split", ["solve", "split"], votes, "solve-or-split",
                   orders={w.name: list(o) for w, o in zip(workers, offered, strict=True)})


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
            labels: list[str] | None = None, **fields: object) -> VoteResult:
    counts, winner, tie = tally(votes, options)
    abstained = [k for k, v in votes.items() if v is None]
    if abstained and not fields.get("counterbalanced"):
        run.note(f"{task}: {len(abstained)} answer(s) unusable; abstained", workers=abstained)
    extra = {"labels": dict(zip(options, labels, strict=True))} if labels else {}
    run.record("vote", question=question, options=options, votes=votes, tally=counts, winner=winner,
               tie=tie, abstained=len(abstained), **extra, **fields)
    return VoteResult(question=question, options=options, votes=votes, tally=counts, winner=winner, tie=tie)

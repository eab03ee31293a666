"""HumorTool (Chilton et al., CHI 2016): jokes by ideation, analysis, generation and crowd rating.

1. **Ideation**: several workers list associations with the topic; the ones named by most workers
   come first.
2. **Analysis of attributes**: for each of the top associations, a worker states what people expect
   about it and a surprising twist (the expectation a joke can violate); when an analysis is
   unusable, the next association takes its place.
3. **Generation**: a worker turns each expectation/twist pair into a short joke.
4. **Rating**: a crowd of raters scores each joke's funniness (1-5); the best mean wins (ties: the
   shorter joke, noted in the trace).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from crowdllm.pipelines._text import clean_answer, mentions, n_words, parse_list, words
from crowdllm.pipelines.evaluation import Evaluator, unit
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import rate, single_answer

ROLE = "You are a creative crowd worker helping a comedy writer."
AUDIENCE = "You are a member of a comedy club audience rating jokes."
FUNNY = "How funny is this joke? (1 = not funny at all, 5 = very funny)"


def run(run: Run, example: Example, s: Settings) -> str:
    topic = str(example["topic"])
    with run.step("ideate"):
        associations = _associations(run, topic, s)
    if not associations:
        run.note("ideation gave no usable associations; the topic itself is used")
        associations = [topic]
    ideas: list[tuple[str, str, str]] = []
    with run.step("analyse"):
        for assoc in associations[: 2 * s.max_parts]:  # an unusable analysis makes room for the next idea
            if len(ideas) >= s.max_parts:
                break
            analyst = run.workers(1, ROLE, temperature=s.temperature, prefix="analyst")[0]
            ask = (f"Topic: {topic}\nAssociation: {assoc}\n\nWhat do people normally expect about this, "
                   "and what surprising twist could turn it into a joke? Answer in two lines:\n"
                   "Expected: ...\nTwist: ...")
            expected, twist = _expectation(run.ask(analyst, ask, task="analyse", max_tokens=80))
            if not twist:
                run.note(f"analysis of '{assoc}' unusable; skipped")
                continue
            ideas.append((assoc, expected, twist))
    jokes: list[str] = []
    with run.step("write jokes"):
        for assoc, expected, twist in ideas:
            writer = run.workers(1, ROLE, temperature=s.temperature, prefix="writer")[0]
            ask = (f"Write one short joke (one or two sentences) about {topic}, built on this idea.\n"
                   f"Association: {assoc}\nExpected: {expected}\nTwist: {twist}\nReply with the joke only.")
            joke = clean_answer(run.ask(writer, ask, task="joke", max_tokens=80))
            if joke and joke not in jokes:
                jokes.append(joke)
    if not jokes:
        run.note("no joke was written; asking one worker directly")
        return baseline(run, example, s)
    scores: dict[str, float] = {}
    with run.step("rate"):
        raters = run.workers(s.voters, AUDIENCE, temperature=s.temperature, prefix="rater")
        for joke in jokes:
            scores[joke] = rate(run, raters, FUNNY, joke, task="rate").mean
            best = _best(scores)
            run.keep(best, f"best rated so far ({_score(scores[best]):.2f})")
    top = [j for j in scores if _score(scores[j]) == _score(scores[best])]
    if len(top) > 1:
        run.note(f"rating tie between {len(top)} jokes; the shortest is kept", jokes=top)
    run.details["ratings"] = scores
    return best


def _score(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def _best(scores: dict[str, float]) -> str:
    """Highest mean rating; among equals the shortest joke."""
    return max(scores, key=lambda j: (_score(scores[j]), -len(j)))


def _associations(run: Run, topic: str, s: Settings) -> list[str]:
    workers = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="ideator")
    ask = f"Topic: {topic}\nList 4 words or short phrases that people associate with this topic, one per line."
    answers = run.ask_each(workers, ask, task="ideate", max_tokens=48)
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for a in answers:
        for item in parse_list(a, 4, max_words=6):
            key = item.lower()
            counts[key] += 1
            first.setdefault(key, item)
    ranked = sorted(first, key=lambda k: -counts[k])  # stable: ties keep first-seen order
    run.record("decision", what="associations", value=[first[k] for k in ranked],
               votes={first[k]: counts[k] for k in ranked})
    return [first[k] for k in ranked]


def _expectation(text: str) -> tuple[str, str]:
    exp = re.search(r"expect\w*\s*[:\-]\s*(.+?)(?=\s*twist\s*[:\-]|\n|$)", text, re.IGNORECASE)
    twist = re.search(r"twist\s*[:\-]\s*(.+)", text, re.IGNORECASE)
    return (exp.group(1).strip() if exp else "", twist.group(1).strip() if twist else "")


def baseline(run: Run, example: Example, s: Settings) -> str:
    ask = f"Write one short, funny joke (one or two sentences) about {example['topic']}. Reply with the joke only."
    return clean_answer(single_answer(run, ROLE, ask, task="joke", max_tokens=80))


def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    joke = str(output)
    keywords = example.get("keywords") or [w for w in words(str(example["topic"])) if len(w) > 3]
    on_topic = any(mentions(joke, k) for k in keywords) if keywords else True
    short = 0 < n_words(joke) <= int(example.get("max_words", 50))
    funny = ev.rating(FUNNY, joke)
    return {"funny": funny, "on_topic": on_topic, "short": short,
            "quality": unit(funny) if on_topic and short else 0.0}


SPEC = PipelineSpec(
    name="humor",
    title="HumorTool",
    reference="Chilton et al. 2016",
    summary="associations -> expectation/twist analysis -> jokes -> funniness rated by a crowd",
    input_key="topic",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=str,
    empty=lambda ex: "",
    uses=("workers", "voters", "max_parts", "temperature"),
    metrics=("funny", "on_topic", "short"),
)

"""Automatic evaluation of pipeline outputs: checks that need no model, and a virtual rater crowd.

The rater crowd is a few workers (with personas when a pool is given) that answer rating and yes/no
questions through ``choice_probs``: one call each, the expected rating (or the probability of "yes")
read from the model's answer distribution. Raters run in their own :class:`Run`, so what evaluation
costs is counted apart from what the pipeline costs. Raters are LLMs too: on a small model their
judgements are noisy, and a pipeline that votes with the same model is judged by a like-minded crowd.

Every ``quality`` is in 0..1 so pipelines and baselines can be put side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crowdllm.llm.base import LanguageModel
from crowdllm.pipelines._text import mentions, n_words, words
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.trace import Trace

RATER_ROLE = "You are a crowd worker judging the work of others. You answer honestly and briefly."


class Evaluator:
    """A virtual rater crowd plus the usage of everything it was asked."""

    def __init__(self, llm: LanguageModel | None, *, raters: int = 3,
                 personas: Sequence[Mapping[str, Any]] | None = None, seed: int = 7919,
                 trace: Trace | None = None) -> None:
        #: no model (``llm=None``): every judged score is NaN and only the checks count
        self.enabled = llm is not None
        self.run = Run(llm, trace=trace, seed=seed, personas=personas)  # type: ignore[arg-type]
        self.crowd = self.run.workers(raters, RATER_ROLE, temperature=0.0, prefix="rater")

    @property
    def usage(self) -> dict[str, Any]:
        return self.run.usage

    def rating(self, question: str, text: str, *, low: int = 1, high: int = 5) -> float:
        """Mean over raters of the expected rating (NaN when no rater gave a usable answer)."""
        if not self.enabled:
            return float("nan")
        if not text.strip():
            return float(low)
        choices = [str(i) for i in range(low, high + 1)]
        content = f"{question}\n\n{text}\n\nAnswer with one number from {low} to {high}."
        dists = self.run.choose(self.crowd, content, choices, task="rate")
        values = [d.expected_value() for d in dists if all(math.isfinite(p) for p in d.probs)]
        return float(np.mean(values)) if values else float("nan")

    def yes_share(self, question: str) -> float:
        """Mean over raters of P(yes)."""
        if not self.enabled:
            return float("nan")
        dists = self.run.choose(self.crowd, f"{question}\nAnswer yes or no.", ["yes", "no"], task="judge")
        values = [d.probs[0] for d in dists if all(math.isfinite(p) for p in d.probs)]
        return float(np.mean(values)) if values else float("nan")

    def meaning_kept(self, original: str, rewrite: str) -> float:
        if not rewrite.strip():
            return 0.0
        return self.yes_share(f"Original:\n{original}\n\nRewrite:\n{rewrite}\n\n"
                              "Does the rewrite keep all the important meaning of the original?")


# ---------------------------------------------------------------------- checks without a model
def unit(rating: float, low: int = 1, high: int = 5) -> float:
    """A rating mapped onto 0..1."""
    return float(np.clip((rating - low) / (high - low), 0.0, 1.0)) if math.isfinite(rating) else float("nan")


def coverage(text: str, keywords: Sequence[str]) -> float:
    """Share of ``keywords`` the text mentions (see :func:`crowdllm.pipelines._text.mentions`)."""
    if not keywords:
        return float("nan")
    return sum(mentions(text, k) for k in keywords) / len(keywords)


def length_reduction(original: str, edited: str) -> float:
    """1 - words(edited) / words(original): 0.3 means 30 % shorter; negative when longer."""
    n = n_words(original)
    return 1.0 - n_words(edited) / n if n else 0.0


def token_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the word sets."""
    wa, wb = set(words(a)), set(words(b))
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def answer_matches(predicted: str, gold: str) -> bool:
    """A short answer is right when it contains every word of the gold answer (or 'a|b' alternatives)."""
    return any(words(alt) and set(words(alt)) <= set(words(predicted)) for alt in gold.split("|"))


def pairwise_order_accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Share of item pairs that ``predicted`` puts in the gold order; pairs with a missing item count wrong."""
    pos = {item.lower(): i for i, item in enumerate(predicted)}
    pairs = right = 0
    for i in range(len(gold)):
        for j in range(i + 1, len(gold)):
            pairs += 1
            a, b = pos.get(gold[i].lower()), pos.get(gold[j].lower())
            right += int(a is not None and b is not None and a < b)
    return right / pairs if pairs else float("nan")


def mean_quality(*parts: float) -> float:
    """Mean of the finite parts (NaN if none)."""
    vals = [p for p in parts if math.isfinite(p)]
    return float(np.mean(vals)) if vals else float("nan")


# ---------------------------------------------------------------------- editing tasks (FFV, iterative)
GOALS = {
    "shorten": "shorter, without losing meaning",
    "polite": "more polite and friendly, keeping its meaning",
    "proofread": "free of spelling and grammar errors, changing nothing else",
    "improve": "better written and clearer",
}


def goal_phrase(example: Mapping[str, Any]) -> str:
    return str(example.get("instruction") or GOALS.get(str(example.get("goal", "improve")), GOALS["improve"]))


def evaluate_edit(ev: Evaluator, example: Mapping[str, Any], output: str) -> dict[str, Any]:
    """Scores of an edited text: meaning kept (rater crowd) times how well the goal was met.

    - shorten: length reduction, full credit from 20 % shorter;
    - polite: politeness after the edit, rated 1-5 by the raters (and the gain over the original);
    - proofread: share of the example's known errors fixed (wrong form gone, right form present);
    - improve: the raters' 1-5 rating of how well the text meets the instruction,
      plus coverage of ``must_mention`` facts when given."""
    original = str(example["text"])
    goal = str(example.get("goal", "improve"))
    changed = output.strip() != original.strip()
    meaning = ev.meaning_kept(original, output)
    out: dict[str, Any] = {"meaning_kept": meaning, "reduction": length_reduction(original, output),
                           "changed": changed}
    if goal == "shorten":
        goal_score = float(np.clip(out["reduction"] / 0.2, 0.0, 1.0))
    elif goal == "polite":
        q = "How polite is this email? (1 = rude, 5 = very polite)"
        before, after = ev.rating(q, original), ev.rating(q, output)
        out.update(politeness=after, politeness_gain=after - before)
        goal_score = unit(after)
    elif goal == "proofread":
        errors = example.get("errors") or list(((example.get("checks") or {}).get("fix") or {}).items())
        fixed = [not _has_phrase(output, wrong) and _has_phrase(output, right) for wrong, right in errors]
        out["errors_fixed"] = float(np.mean(fixed)) if fixed else float("nan")
        goal_score = out["errors_fixed"] if fixed else float(changed)
    else:
        q = f"How well does this text meet the instruction: {goal_phrase(example)}? (1 = not at all, 5 = fully)"
        out["rating"] = ev.rating(q, output)
        goal_score = unit(out["rating"])
        if example.get("must_mention"):
            out["coverage"] = coverage(output, example["must_mention"])
            goal_score = mean_quality(goal_score, out["coverage"])
    out["quality"] = float(meaning * goal_score) if math.isfinite(meaning) and math.isfinite(goal_score) \
        else float("nan")
    return out


def _has_phrase(text: str, phrase: str) -> bool:
    tw, pw = words(text), words(phrase)
    return any(tw[i:i + len(pw)] == pw for i in range(len(tw) - len(pw) + 1)) if pw else False

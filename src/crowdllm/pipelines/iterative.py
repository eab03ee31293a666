"""Iterative process (TurKit; Little et al., HCOMP 2010), with its parallel variant.

Iterative: each round one new worker improves the current text, then a crowd votes between the current
and the new version (order shuffled per voter); the winner carries on. A tie keeps the current text.

Parallel (the comparison in Little et al.): as many workers as there are rounds each improve the
*original* independently, then the crowd votes once for the best of all versions.
Both spend the same number of improvement calls, so the comparison is about the process.
"""

from __future__ import annotations

from typing import Any

from crowdllm.pipelines._text import clean_answer
from crowdllm.pipelines.compose import loop
from crowdllm.pipelines.evaluation import Evaluator, evaluate_edit, goal_phrase
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import compare, decide, single_rewrite, vote, write

ROLE = "You are a crowd worker improving a short piece of writing."


def _ask(example: Example, text: str) -> str:
    return (f"Goal: make the text {goal_phrase(example)}.\n\nText:\n{text}\n\n"
            "Write an improved version of the whole text. Reply with the new text only.")


def _criterion(example: Example) -> str:
    return f"Which version better achieves this goal: make the text {goal_phrase(example)}?"


def run(run: Run, example: Example, s: Settings) -> str:
    original = str(example["text"])
    run.keep(original, "the original text is the fallback")
    voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="voter")

    def improve_then_vote(current: str, r: int) -> str:
        writer = run.workers(1, ROLE, temperature=s.temperature, prefix=f"writer{r + 1}-")[0]
        with run.step("improve"):
            new = clean_answer(run.ask(writer, _ask(example, current), task="improve",
                                       max_tokens=s.max_tokens * 2))
        if not new or new.strip() == current.strip():
            run.note(f"round {r + 1}: no new version; the current text stays")
            return current
        with run.step("vote"):
            result = compare(run, voters, _criterion(example), current, new, task="vote", by=s.compare_by)
            winner = decide(run, result, default="0", what=f"round {r + 1} vote")
        if winner == "1":
            run.keep(new, f"round {r + 1}: the new version won")
            return new
        run.record("decision", what=f"round {r + 1}", value="the current version stays")
        return current

    return loop(run, original, improve_then_vote, rounds=s.rounds)


def parallel(run: Run, example: Example, s: Settings) -> str:
    original = str(example["text"])
    run.keep(original, "the original text is the fallback")
    with run.step("improve"):
        writers = run.workers(s.rounds, ROLE, temperature=s.temperature, prefix="writer")
        versions = []
        for v in write(run, writers, _ask(example, original), task="improve", max_tokens=s.max_tokens * 2):
            if v.strip() != original.strip() and v not in versions:
                versions.append(v)
    if not versions:
        run.note("no new version; the original stays")
        return original
    options = [original, *versions]
    with run.step("vote"):
        voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="voter")
        result = vote(run, voters, f"{_criterion(example)} Choose the best version.", options, task="vote",
                      by_name=False)
        best = options[int(decide(run, result, default="0", what="vote"))]
    run.keep(best, "the vote's choice")
    return best


def baseline(run: Run, example: Example, s: Settings) -> str:
    original = str(example["text"])
    return single_rewrite(run, ROLE, _ask(example, original), original, task="improve", max_tokens=s.max_tokens * 2)


def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    return evaluate_edit(ev, example, str(output))


SPEC = PipelineSpec(
    name="iterative",
    title="Iterative process",
    reference="TurKit, Little et al. 2010",
    summary="improve -> vote old vs new, for n rounds; variant 'parallel': n independent versions, one vote",
    input_key="text",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=str,
    empty=lambda ex: str(ex["text"]),
    uses=("voters", "rounds", "max_tokens", "temperature", "compare_by"),
    variants={"parallel": parallel},
    editing=True,
    metrics=("meaning_kept", "rating", "coverage", "politeness", "politeness_gain"),
)

"""Price-Divide-Solve (Turkomatic; Kulkarni et al., CSCW 2012): the crowd plans its own work.

For a task, a crowd first *prices* it: a vote on whether it can be solved in one short answer or
should be divided. Divided tasks get 2-3 subtasks from one worker, and each subtask goes through the
same process, one level deeper; at ``max_depth`` a task is solved directly (noted in the trace).
Solutions of subtasks are merged by a worker, and the final answer is verified by a vote; a rejected
answer is revised once and kept only if the revision passes.
"""

from __future__ import annotations

from typing import Any

from crowdllm.pipelines._text import clean_answer
from crowdllm.pipelines.compose import map_parts
from crowdllm.pipelines.evaluation import Evaluator, coverage, mean_quality, unit
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import decide, list_items, single_answer, solve_or_split, verify

ROLE = "You are a crowd worker on a task marketplace; your task may be one part of a bigger job."


def run(run: Run, example: Example, s: Settings) -> str:
    job = str(example["task"])
    solved: list[str] = []
    answer = _work(run, job, 0, None, s, solved)
    run.keep(answer, "merged answer")
    with run.step("verify"):
        ok = _verified(run, job, answer, s)
    if not ok:
        with run.step("revise"):
            reviser = run.workers(1, ROLE, temperature=s.temperature, prefix="reviser")[0]
            ask = (f"Task: {job}\n\nDraft answer:\n{answer}\n\nReviewers said this draft does not complete "
                   "the task well. Write an improved answer that does. Reply with the answer only.")
            revised = clean_answer(run.ask(reviser, ask, task="revise", max_tokens=s.max_tokens * 2))
            if revised and _verified(run, job, revised, s):
                run.keep(revised, "the revision passed verification")
                answer, ok = revised, True
            else:
                run.note("the revision did not pass verification; the merged answer is kept")
    run.details["verified"] = ok
    return answer


def _verified(run: Run, job: str, answer: str, s: Settings) -> bool:
    voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="verifier")
    result = verify(run, voters, f"Task: {job}\n\nAnswer:\n{answer}\n\nDoes this answer complete the task well?",
                    task="verify")
    return decide(run, result, default="no", what="verification") == "yes"


def _work(run: Run, job: str, depth: int, parent: str | None, s: Settings, solved: list[str]) -> str:
    if depth >= s.max_depth:
        if depth > 0:
            run.note(f"depth limit {s.max_depth} reached: the task is solved directly", task_text=job)
        return _solve(run, job, parent, s, solved)
    with run.step("price"):
        voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="pricer")
        choice = decide(run, solve_or_split(run, voters, job), default="solve", what="solve or split")
    if choice == "solve":
        return _solve(run, job, parent, s, solved)
    with run.step("divide"):
        divider = run.workers(1, ROLE, temperature=s.temperature, prefix="divider")[0]
        ask = (f"Task: {job}\n\nDivide this task into 2 or 3 smaller subtasks that together complete it. "
               "Write one subtask per line, nothing else.")
        subtasks = list_items(run, divider, ask, task="divide", max_items=s.max_parts, max_tokens=96)
    if len(subtasks) < 2:
        run.note("division unusable (fewer than 2 subtasks); the task is solved directly")
        return _solve(run, job, parent, s, solved)
    parts = map_parts(run, subtasks, lambda i, sub: _work(run, sub, depth + 1, job, s, solved), name="subtask")
    with run.step("merge"):
        merger = run.workers(1, ROLE, temperature=s.temperature, prefix="merger")[0]
        listing = "\n\n".join(f"Part {i + 1} ({sub}):\n{p}" for i, (sub, p) in enumerate(zip(subtasks, parts,
                                                                                             strict=True)))
        ask = (f"Task: {job}\n\nCombine these partial answers into one complete, concise answer for the task. "
               f"Reply with the answer only.\n\n{listing}")
        merged = clean_answer(run.ask(merger, ask, task="merge", max_tokens=s.max_tokens * 2))
    if not merged:
        run.note("merge gave an empty answer; the parts are joined as they are")
        merged = "\n\n".join(parts)
    return merged


def _solve(run: Run, job: str, parent: str | None, s: Settings, solved: list[str]) -> str:
    with run.step("solve"):
        solver = run.workers(1, ROLE, temperature=s.temperature, prefix="solver")[0]
        context = f"Overall job: {parent}\n" if parent else ""
        ask = f"{context}Your task: {job}\n\nDo this task. Answer concisely. Reply with the answer only."
        answer = clean_answer(run.ask(solver, ask, task="solve", max_tokens=s.max_tokens))
    if not answer:
        run.note("a solver gave an empty answer", task_text=job)
    solved.append(answer)
    run.keep("\n\n".join(a for a in solved if a), f"{len(solved)} part(s) solved")
    return answer


def baseline(run: Run, example: Example, s: Settings) -> str:
    ask = f"Your task: {example['task']}\n\nDo this task. Answer concisely. Reply with the answer only."
    return clean_answer(single_answer(run, ROLE, ask, task="solve", max_tokens=s.max_tokens * 2))


def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    text = str(output)
    cov = coverage(text, example.get("must_cover") or [])
    rating = ev.rating(f"How well does this answer complete the task: {example['task']}? "
                       "(1 = not at all, 5 = completely)", text)
    return {"coverage": cov, "rating": rating, "quality": mean_quality(cov, unit(rating))}


SPEC = PipelineSpec(
    name="price-divide-solve",
    title="Price-Divide-Solve",
    reference="Turkomatic, Kulkarni et al. 2012",
    summary="vote solve-or-split, divide recursively (depth limit), solve, merge, verify",
    input_key="task",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=str,
    empty=lambda ex: "",
    uses=("voters", "max_parts", "max_depth", "max_tokens", "temperature"),
    metrics=("coverage", "rating"),
)

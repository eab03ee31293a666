"""Find-Fix-Verify (Soylent; Bernstein et al., UIST 2010).

1. **Find**: the text is cut into numbered parts (clauses); several workers name the parts that need
   work (wordy, rude, misspelled); a part becomes a *patch* only when at least ``agree`` workers
   named it. (Soylent's workers highlighted spans; copying exact spans is unreliable for small
   models, naming numbered parts is not.)
2. **Fix**: for each patch, several workers write a replacement (in the context of the whole text);
   when shortening, a part of at most a third of the text may also simply be deleted.
3. **Verify**: for each candidate, a vote: does it keep the meaning and is it correct? Candidates
   without a majority "yes" are voted out; of the rest the shortest (goal "shorten") or the most
   approved wins. A patch with no surviving candidate stays as it was.

Goals: ``shorten`` (Soylent's Shortn), ``proofread`` (Crowdproof), ``polite`` (POPQUORN's email
rewriting), ``improve``. The original text is kept as the fallback result.
"""

from __future__ import annotations

import re
from typing import Any

from crowdllm.pipelines._text import n_words
from crowdllm.pipelines.evaluation import Evaluator, evaluate_edit, goal_phrase
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import find_spans, single_rewrite, verify, write

ROLE = "You are a careful copy editor doing one small part of an editing job."

FIND = {
    "shorten": "Which parts are wordy or say something unnecessary, so they could be said in fewer words?",
    "polite": "Which parts sound rude, blunt or unfriendly?",
    "proofread": "Which parts contain spelling or grammar errors?",
    "improve": "Which parts are unclear or badly written?",
}


def _goal(example: Example) -> str:
    goal = str(example.get("goal", "shorten"))
    return goal if goal in FIND else "improve"


def run(run: Run, example: Example, s: Settings) -> str:
    text, goal = str(example["text"]), _goal(example)
    run.keep(text, "the original text is the fallback")
    with run.step("find"):
        finders = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="finder")
        agree = min(s.agree, s.workers)
        if agree < s.agree:
            run.note(f"agree={s.agree} is more than the {s.workers} finder(s); using agree={agree}")
        patches = find_spans(run, finders, text, FIND[goal], agree=agree, max_spans=s.max_parts)
    if not patches:
        run.note("find: no region reached agreement; the text is left unchanged")
        return text
    edits: list[tuple[int, int, str]] = []
    for i, (start, end) in enumerate(patches):
        with run.step(f"patch {i + 1}"):
            replacement = _fix_and_verify(run, text, text[start:end], goal, s)
            if replacement is not None:
                edits.append((start, end, replacement))
                run.keep(apply_edits(text, edits), f"patch {i + 1} applied")
    run.details["patches"] = [{"original": text[a:b], "replacement": r} for a, b, r in edits]
    return apply_edits(text, edits)


def _fix_and_verify(run: Run, text: str, patch: str, goal: str, s: Settings) -> str | None:
    with run.step("fix"):
        fixers = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="fixer")
        # deleting is offered for small parts only: a small model's verifiers wave through the
        # deletion of a whole main clause as readily as that of a filler phrase
        deletable = goal == "shorten" and n_words(patch) * 3 <= n_words(text)
        delete = " If the part can simply be removed, reply DELETE." if deletable else ""
        ask = (f"Text:\n{text}\n\nRewrite only this part of the text so that it is {GOAL_FIX[goal]}:\n"
               f"\"{patch}\"\nReply with the new wording for that part only.{delete}")
        candidates: list[str] = []
        for answer in write(run, fixers, ask, task="fix", max_tokens=min(s.max_tokens, 96)):
            line = answer.strip().splitlines()[0].strip()
            if re.fullmatch(r"\W*delete\W*", line, re.IGNORECASE):
                if not deletable:
                    run.note("fix: a deletion was proposed for a large part; ignored", patch=patch)
                    continue
                cand = ""
            else:
                cand = fit_in(line, patch, text)
            if cand.strip() != patch.strip() and cand not in candidates:
                candidates.append(cand)
    if not candidates:
        run.note("fix: no usable new wording; the patch is left unchanged", patch=patch)
        return None
    with run.step("verify"):
        voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="verifier")
        passed: list[tuple[float, str]] = []
        for cand in candidates:
            q = (f"Text:\n{text}\n\nIn this text, the part \"{patch}\" would be replaced by "
                 f"\"{cand or '(nothing: the part is deleted)'}\".\n"
                 "Does the text keep its meaning and stay correct English after this change?")
            result = verify(run, voters, q, task="verify")
            if result.valid and result.share("yes") > 0.5:
                passed.append((result.share("yes"), cand))
            elif result.tie:
                run.note("verify: tied vote; the candidate is voted out", candidate=cand)
    if not passed:
        run.note("verify: every candidate was voted out; the patch is left unchanged", patch=patch)
        return None
    if goal == "shorten":
        best = min(passed, key=lambda p: (len(p[1]), -p[0]))[1]
    else:
        best = max(passed, key=lambda p: (p[0], -len(p[1])))[1]
    run.record("decision", what="replacement", value=best or "(delete the part)", patch=patch)
    return best


GOAL_FIX = {
    "shorten": "shorter but means the same",
    "polite": "polite and friendly but means the same",
    "proofread": "free of spelling and grammar errors",
    "improve": "clearer and better written",
}


def fit_in(new: str, patch: str, text: str) -> str:
    """A replacement made to fit where the patch was: no wrapping quotes; lower-case first letter and
    no closing period when the patch is mid-sentence (a capitalised first word stays when the text
    writes it capitalised too, like a name, or it is "I")."""
    new = new.strip().strip("\"'\u201c\u201d").strip()
    if not new:
        return new
    first = new.split()[0]
    if patch[:1].islower() and new[:1].isupper() and first != "I" and not first.isupper() \
            and re.search(rf"(?<![.!?]\s)\b{re.escape(first)}\b", text) is None:
        new = new[0].lower() + new[1:]
    if patch[-1:].isalnum() and new[-1:] in ".!;:,":
        new = new.rstrip(".!;:,").rstrip()
    return new


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end, replacement) applied (regions must not overlap). A deletion
    also removes the comma that enclosed it ("The talk, sadly, ended" -> "The talk ended")."""
    out = text
    for start, end, new in sorted(edits, reverse=True):
        if new.strip():
            out = out[:start] + new + out[end:]
            continue
        before, after = out[:start].rstrip(), out[end:].lstrip()
        if before.endswith(",") and after[:1] in (",", ".", ";", ":", "!", "?"):
            before = before[:-1]
            after = after[1:].lstrip() if after[:1] == "," else after
        joiner = "" if not before or not after or after[:1] in ",.;:!?" else " "
        if not before:
            after = after.lstrip(",;: ")
            after = after[:1].upper() + after[1:]
        out = before + joiner + after
    out = re.sub(r"[ \t]{2,}", " ", out)
    out = re.sub(r"[ \t]+([,.;:!?])", r"\1", out)
    return out.strip()


def baseline(run: Run, example: Example, s: Settings) -> str:
    ask = (f"Rewrite the text so that it is {goal_phrase({**example, 'goal': _goal(example)})}. "
           f"Reply with the rewritten text only.\n\nText:\n{example['text']}")
    return single_rewrite(run, ROLE, ask, str(example["text"]), task="rewrite", max_tokens=s.max_tokens * 2)


def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    return evaluate_edit(ev, {**example, "goal": _goal(example)}, str(output))


SPEC = PipelineSpec(
    name="find-fix-verify",
    title="Find-Fix-Verify",
    reference="Soylent, Bernstein et al. 2010",
    summary="workers find spans to fix (kept when >= agree agree), fix them, and vote out bad fixes",
    input_key="text",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=str,
    empty=lambda ex: str(ex["text"]),
    uses=("workers", "voters", "agree", "max_parts", "max_tokens", "temperature"),
    editing=True,
    metrics=("meaning_kept", "reduction", "politeness", "politeness_gain"),
)

"""Task paraphrase (QA-SRL; He et al., EMNLP 2015): semantic roles as question-answer pairs.

Instead of labelling semantic roles, workers answer easy template questions about each verb:

1. **Predicates**: several workers name the verbs of the sentence (mapped to the form the sentence
   uses when it is there: small models often answer with the base form, "buy" for "bought");
   verbs named by >= ``agree`` workers are kept (all named verbs when none reaches agreement, noted).
2. **Generate**: for each verb, a worker writes question-answer pairs from the QA-SRL template
   (a wh-word, the verb, placeholders like "someone"/"something"; the answer copied from the sentence).
   Pairs that break the template are dropped: no wh-word first, neither the verb nor a placeholder in
   the question (irregular forms like bought/buy cannot be checked without a lemmatiser), or an answer
   that is not in the sentence.
3. **Verify**: a crowd votes on each pair ("is the answer correct?"); pairs without a majority
   "yes" are dropped. The share of unanimous votes is reported as the crowd's agreement.
"""

from __future__ import annotations

import re
from typing import Any

from crowdllm.pipelines._text import clean_answer, locate, mentions, parse_list, strip_item, words
from crowdllm.pipelines.evaluation import Evaluator, answer_matches, token_overlap
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import agreed, single_answer, verify

ROLE = "You are a crowd worker annotating sentences with simple questions and answers."
WH = ("who", "what", "when", "where", "why", "how")
TEMPLATE = ("Each question starts with Who, What, When, Where, Why or How, uses the verb, and says "
            "'someone' or 'something' instead of other words from the sentence, e.g. 'Who bought "
            "something?' or 'Where did someone buy something?'. Each answer is a short phrase copied "
            "from the sentence. Write one pair per line as: question? | answer")

QA = dict[str, Any]


def run(run: Run, example: Example, s: Settings) -> list[QA]:
    sentence = str(example["sentence"])
    with run.step("predicates"):
        verbs = _predicates(run, sentence, s)
    pairs: list[QA] = []
    with run.step("generate"):
        for verb in verbs:
            writer = run.workers(1, ROLE, temperature=s.temperature, prefix="writer")[0]
            ask = f"Sentence: {sentence}\nVerb: {verb}\n\nWrite question-answer pairs about this verb. {TEMPLATE}"
            answer = run.ask(writer, ask, task="generate", max_tokens=s.max_tokens)
            pairs += valid_pairs(run, parse_pairs(answer, verb), sentence)
    kept: list[QA] = []
    unanimous = 0
    with run.step("verify"):
        for pair in pairs:
            voters = run.workers(s.voters, ROLE, temperature=s.temperature, prefix="verifier")
            q = (f"Sentence: {sentence}\nQuestion: {pair['question']}\nAnswer: {pair['answer']}\n\n"
                 "Is this answer correct according to the sentence?")
            result = verify(run, voters, q, task="verify")
            unanimous += int(result.unanimous)
            if result.winner == "yes":
                kept.append({**pair, "yes": round(result.share("yes"), 3)})
                run.keep(list(kept), f"{len(kept)} pair(s) verified")
            elif result.tie:
                run.note("verify: tied vote; the pair is dropped", pair=pair)
    run.details["agreement"] = unanimous / len(pairs) if pairs else float("nan")
    run.details["generated"] = len(pairs)
    return kept


def _predicates(run: Run, sentence: str, s: Settings) -> list[str]:
    workers = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="finder")
    ask = f"Sentence: {sentence}\n\nList the verbs of this sentence, copied exactly, one per line."
    named: dict[str, list[str]] = {}
    for w, a in zip(workers, run.ask_each(workers, ask, task="predicates", max_tokens=48), strict=True):
        named[w.name] = [_as_written(v, sentence) for v in parse_list(a, 8, max_words=2)
                         if re.fullmatch(r"[A-Za-z][A-Za-z' -]*", v)]
    verbs = agreed(named, min(s.agree, len(workers)))
    if not verbs:
        verbs = agreed(named, 1)
        if verbs:
            run.note("no verb reached agreement; every named verb is used")
    run.record("decision", what="predicates", value=verbs[: s.max_parts])
    return verbs[: s.max_parts]


def _as_written(verb: str, sentence: str) -> str:
    """The verb as the sentence writes it when it is there ('Tasted' -> 'tasted', 'taste' -> 'tasted');
    otherwise as named (a base form like 'buy' for 'bought' is still a fine predicate to ask about)."""
    exact = re.search(rf"\b{re.escape(verb)}\b", sentence, re.IGNORECASE)
    if exact:
        return exact.group(0)
    stem = verb.lower()[: max(3, len(verb) - 2)]
    for word in re.findall(r"[A-Za-z']+", sentence):
        if word.lower().startswith(stem):
            return word
    return verb.lower()


def parse_pairs(text: str, predicate: str | None = None) -> list[QA]:
    """'question? | answer' lines (also 'question? answer' and 'Q: ... A: ...')."""
    pairs = []
    for line in clean_answer(text).splitlines():
        line = re.sub(r"\?{2,}", "?", line)
        line = strip_item(line) if not line.strip().endswith("?") else line.strip()
        m = re.match(r"^\s*(?:q(?:uestion)?\s*[:.]\s*)?(.+?\?)\s*(?:\||-|:|a(?:nswer)?\s*[:.])?\s*(.*)$", line,
                     re.IGNORECASE)
        if not m:
            continue
        question, answer = m.group(1).strip(), m.group(2).strip().strip("\"'").rstrip(".")
        pairs.append({"predicate": predicate, "question": question, "answer": answer})
    return pairs


def valid_pairs(run: Run | None, pairs: list[QA], sentence: str) -> list[QA]:
    """Pairs that follow the template: a wh-word first, the verb in the question (when known), an
    answer copied from the sentence. Dropped pairs are noted in the trace."""
    out, dropped = [], []
    for p in pairs:
        q = p["question"]
        first = q.split()[0].lower().strip(",") if q.split() else ""
        templated = any(w in ("someone", "something") for w in words(q))
        verb_ok = p["predicate"] is None or templated or mentions(q, _stem(p["predicate"]))
        if first in WH and verb_ok and p["answer"] and locate(p["answer"], sentence):
            if all((p["question"].lower(), p["answer"].lower()) != (o["question"].lower(), o["answer"].lower())
                   for o in out):
                out.append(p)
        else:
            dropped.append(p)
    if dropped and run is not None:
        run.note(f"{len(dropped)} pair(s) broke the template; dropped", pairs=dropped)
    return out


def _stem(verb: str) -> str:
    v = verb.lower().strip()
    return v[:4] if len(v) > 4 else v


def render(pairs: Any) -> str:
    return "\n".join(f"{p['question']} | {p['answer']}" for p in pairs or [])


def baseline(run: Run, example: Example, s: Settings) -> list[QA]:
    sentence = str(example["sentence"])
    ask = f"Sentence: {sentence}\n\nWrite question-answer pairs about every verb in this sentence. {TEMPLATE}"
    return valid_pairs(run, parse_pairs(single_answer(run, ROLE, ask, task="generate", max_tokens=s.max_tokens * 2)),
                       sentence)


def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    """Precision / recall / F1 against the gold pairs: a predicted pair matches a gold pair when its
    question uses the same wh-word and mentions the gold verb, and the answers overlap."""
    gold = list(example.get("qa") or [])
    pred = list(output or [])
    used: set[int] = set()
    hits = 0
    for p in pred:
        wh = p["question"].split()[0].lower() if p["question"].split() else ""
        for i, g in enumerate(gold):
            if i in used or wh != g["wh"] or not mentions(p["question"], g["predicate"]):
                continue
            if answer_matches(p["answer"], g["answer"]) or token_overlap(p["answer"], g["answer"]) >= 0.5:
                used.add(i)
                hits += 1
                break
    precision = hits / len(pred) if pred else 0.0
    recall = hits / len(gold) if gold else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"pairs": len(pred), "precision": precision, "recall": recall, "quality": f1}


SPEC = PipelineSpec(
    name="task-paraphrase",
    title="Task paraphrase (QA-SRL)",
    reference="QA-SRL, He et al. 2015",
    summary="find verbs (agreement), template question-answer pairs per verb, crowd-verified",
    input_key="sentence",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=render,
    empty=lambda ex: [],
    uses=("workers", "voters", "agree", "max_parts", "max_tokens", "temperature"),
    judged=False,
    metrics=("precision", "recall", "pairs", "agreement"),
)

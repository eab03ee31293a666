"""Map-Reduce (CrowdForge; Kittur et al., UIST 2011): writing an article as partition, map, reduce.

1. **Partition**: one worker writes an outline (section headings). A garbled outline is asked again
   once; if it is still unusable, generic headings are used (and the trace says so).
2. **Map**: for each section, several workers each contribute one fact.
3. **Reduce**: for each section, one worker writes a paragraph from its facts; the sections are then
   merged into one article under their headings.
"""

from __future__ import annotations

from typing import Any

from crowdllm.pipelines._text import clean_answer, n_words
from crowdllm.pipelines.compose import map_parts
from crowdllm.pipelines.evaluation import Evaluator, coverage, mean_quality, token_overlap, unit
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, PipelineSpec, Settings
from crowdllm.pipelines.steps import list_items, single_answer, write

ROLE = "You are a crowd worker helping to write a short, factual article."


def _n_sections(example: Example, s: Settings) -> int:
    return max(2, min(int(example.get("sections", s.max_parts)), s.max_parts))


def run(run: Run, example: Example, s: Settings) -> str:
    topic, k = str(example["topic"]), _n_sections(example, s)
    with run.step("partition"):
        headings = _outline(run, topic, k, s)
    with run.step("map"):
        facts = map_parts(run, headings, lambda i, h: _facts(run, topic, h, s), name="section")
    paragraphs: list[str] = []
    with run.step("reduce"):
        for i, (heading, section_facts) in enumerate(zip(headings, facts, strict=True)):
            with run.step(f"section {i + 1}"):
                paragraphs.append(_paragraph(run, topic, heading, section_facts, s))
            run.keep(assemble(topic, headings[: i + 1], paragraphs), f"{i + 1} section(s) written")
    run.details["outline"] = headings
    return assemble(topic, headings, paragraphs)


def _outline(run: Run, topic: str, k: int, s: Settings) -> list[str]:
    ask = (f"Plan a short article about: {topic}\nWrite exactly {k} section headings, one per line, "
           "and nothing else.")
    for attempt in range(2):
        planner = run.workers(1, ROLE, temperature=s.temperature, prefix=f"planner{attempt + 1}-")[0]
        headings = [h for h in list_items(run, planner, ask, task="outline", max_items=k, max_tokens=64)
                    if 1 <= n_words(h) <= 12]
        if len(headings) >= 2:
            return headings
        run.note(f"outline attempt {attempt + 1} unusable ({len(headings)} heading(s))")
    fallback = [f"What {topic} is", f"The history of {topic}", f"Why {topic} matters"][:k]
    run.note("outline: using generic headings", headings=fallback)
    return fallback


def _facts(run: Run, topic: str, heading: str, s: Settings) -> list[str]:
    workers = run.workers(s.workers, ROLE, temperature=s.temperature, prefix="fact")
    ask = (f"Article topic: {topic}\nSection: {heading}\n\n"
           "Write one short, true fact for this section. One sentence only.")
    facts: list[str] = []
    for f in write(run, workers, ask, task="fact", max_tokens=48):
        f = f.splitlines()[0].strip()
        if f and all(token_overlap(f, g) < 0.8 for g in facts):
            facts.append(f)
    run.record("decision", what="facts", value=facts, section=heading)
    return facts


def _paragraph(run: Run, topic: str, heading: str, facts: list[str], s: Settings) -> str:
    if not facts:
        run.note(f"section '{heading}': no facts collected; the section is left empty")
        return ""
    writer = run.workers(1, ROLE, temperature=s.temperature, prefix="writer")[0]
    listing = "\n".join(f"- {f}" for f in facts)
    ask = (f"Write one paragraph (2-4 sentences) for the section \"{heading}\" of an article about "
           f"{topic}, using these facts:\n{listing}\nReply with the paragraph only.")
    text = clean_answer(run.ask(writer, ask, task="paragraph", max_tokens=s.max_tokens))
    if not text:
        run.note(f"section '{heading}': empty paragraph; the facts are used as they are")
        return " ".join(facts)
    return text


def assemble(topic: str, headings: list[str], paragraphs: list[str]) -> str:
    """The merged article: title, then each heading with its paragraph."""
    parts = [f"# {topic}"]
    for h, p in zip(headings, paragraphs, strict=False):
        parts.append(f"## {h}\n\n{p}".rstrip())
    return "\n\n".join(parts)


def baseline(run: Run, example: Example, s: Settings) -> str:
    topic, k = str(example["topic"]), _n_sections(example, s)
    ask = (f"Write a short, factual article about: {topic}\nUse {k} sections, each with a heading and "
           "one paragraph of 2-4 sentences.")
    return clean_answer(single_answer(run, ROLE, ask, task="article", max_tokens=s.max_tokens * k))


def evaluate(ev: Evaluator, example: Example, output: Any) -> dict[str, Any]:
    text = str(output)
    cov = coverage(text, example.get("must_cover") or [])
    rating = ev.rating(f"How informative, correct and well written is this short article about "
                       f"{example['topic']}? (1 = poor, 5 = excellent)", text)
    limit = int(example.get("max_words", 400))
    return {"coverage": cov, "rating": rating, "words": n_words(text), "length_ok": n_words(text) <= limit,
            "quality": mean_quality(cov, unit(rating))}


SPEC = PipelineSpec(
    name="map-reduce",
    title="Map-Reduce",
    reference="CrowdForge, Kittur et al. 2011",
    summary="partition a writing task into an outline, map (facts per section), reduce (paragraphs, merge)",
    input_key="topic",
    run=run,
    baseline=baseline,
    evaluate=evaluate,
    render=str,
    empty=lambda ex: "",
    uses=("workers", "max_parts", "max_tokens", "temperature"),
    metrics=("coverage", "rating", "words"),
)

"""Map-Reduce: outline, facts per section, paragraphs, merge; garbled outlines and budget."""

from __future__ import annotations

from pipeline_crowds import after, rules_llm

from crowdllm.pipelines import Budget, Evaluator, Settings, get_pipeline, run_pipeline


def _crowd(outline: str | list[str]):
    outlines = outline if isinstance(outline, list) else [outline]
    return rules_llm([
        ("section headings", lambda u, i: outlines.pop(0) if len(outlines) > 1 else outlines[0]),
        ("one short, true fact", lambda u, i: f"Fact {i + 1} on {after(u, 'Section:').splitlines()[0]}."),
        ("Write one paragraph", lambda u, i: "Paragraph: " + " ".join(
            line[2:] for line in u.splitlines() if line.startswith("- "))),
    ])


def test_sections_are_written_from_their_facts_and_merged_in_order():
    llm = _crowd("1. Origins\n2. How it works")
    out = run_pipeline("map-reduce", {"id": "b", "topic": "the bicycle", "sections": 2}, llm,
                       settings=Settings(workers=2))
    assert out.output == ("# the bicycle\n\n## Origins\n\nParagraph: Fact 1 on Origins. Fact 2 on Origins.\n\n"
                          "## How it works\n\nParagraph: Fact 1 on How it works. Fact 2 on How it works.")
    assert out.usage["calls"] == 1 + 2 * 2 + 2  # outline, facts, paragraphs
    assert out.details["outline"] == ["Origins", "How it works"]


def test_a_garbled_outline_is_asked_again_then_generic_headings_are_used():
    llm = _crowd(["I cannot do that.", "Sorry."])
    out = run_pipeline("map-reduce", {"id": "b", "topic": "tea", "sections": 2}, llm, settings=Settings(workers=1))
    assert out.details["outline"] == ["What tea is", "The history of tea"]
    assert sum("unusable" in n for n in out.notes) == 2 and any("generic headings" in n for n in out.notes)
    retried = _crowd(["Sorry.", "Growing\nBrewing"])
    assert run_pipeline("map-reduce", {"id": "b", "topic": "tea", "sections": 2}, retried,
                        settings=Settings(workers=1)).details["outline"] == ["Growing", "Brewing"]


def test_duplicate_facts_are_merged_and_empty_sections_noted():
    llm = rules_llm([("section headings", "A\nB"), ("one short, true fact", "Same fact."),
                     ("Write one paragraph", "")])
    out = run_pipeline("map-reduce", {"id": "x", "topic": "x", "sections": 2}, llm, settings=Settings(workers=3))
    assert "## A\n\nSame fact." in out.output  # the fact stands in for the empty paragraph
    assert any("empty paragraph" in n for n in out.notes)


def test_budget_keeps_the_sections_written_so_far():
    llm = _crowd("Origins\nParts\nUses")
    # outline 1 + facts 3x2 + first paragraph 1 = 8 calls; the second paragraph is over budget
    out = run_pipeline("map-reduce", {"id": "b", "topic": "bikes"}, llm, settings=Settings(workers=2),
                       budget=Budget(max_calls=8))
    assert not out.complete and out.output.startswith("# bikes\n\n## Origins") and "## Parts" not in out.output


def test_evaluation_counts_required_facts_and_the_raters_rating():
    ev = Evaluator(rules_llm([], choice_script=lambda m, c: [1.0 if x == "5" else 0.0 for x in c]))
    m = get_pipeline("map-reduce").evaluate(ev, {"topic": "bees", "must_cover": ["queen", "hive|colony", "wax"]},
                                            "The queen lives in the colony.")
    assert m["coverage"] == 2 / 3 and m["rating"] == 5.0 and abs(m["quality"] - (2 / 3 + 1) / 2) < 1e-9

"""HumorTool: associations ranked by agreement, analysis, jokes, crowd rating; garbage and ties."""

from __future__ import annotations

from pipeline_crowds import after, rules_llm

from crowdllm.pipelines import Budget, Evaluator, Settings, get_pipeline, run_pipeline


def _crowd(rating):
    return rules_llm([
        ("associate with this topic", lambda u, i: ["beans\nmugs", "mugs\nmornings", "mugs\nbeans"][i % 3]),
        ("surprising twist", lambda u, i: f"Expected: {after(u, 'Association:').splitlines()[0]} are normal\n"
                                          "Twist: they are not"),
        ("Write one short joke", lambda u, i: f"Joke about {after(u, 'Association:').splitlines()[0]} and coffee."),
        ("How funny", rating),
    ])


def test_the_crowd_picks_the_joke_it_finds_funniest():
    llm = _crowd(lambda u, i: "5" if "beans" in u else "2")
    out = run_pipeline("humor", {"id": "c", "topic": "coffee"}, llm, settings=Settings(workers=3, voters=3))
    assert out.output == "Joke about beans and coffee."
    # 'mugs' (3 workers) ranks before 'beans' (2) and 'mornings' (1)
    assert [r for r in out.details["ratings"]] == ["Joke about mugs and coffee.", "Joke about beans and coffee.",
                                                   "Joke about mornings and coffee."]
    assert out.details["ratings"]["Joke about beans and coffee."] == 5.0
    assert out.usage["calls"] == 3 + 3 + 3 + 3 * 3


def test_a_rating_tie_keeps_the_shortest_joke_with_a_note():
    out = run_pipeline("humor", {"id": "c", "topic": "coffee"}, _crowd("3"), settings=Settings(max_parts=2))
    assert out.output == "Joke about mugs and coffee." and any("rating tie" in n for n in out.notes)


def test_unusable_analyses_are_skipped_and_no_joke_means_one_direct_joke():
    llm = rules_llm([("associate with this topic", "beans"), ("surprising twist", "I like coffee."),
                     ("funny joke", "Decaf? No thanks.")])
    out = run_pipeline("humor", {"id": "c", "topic": "coffee"}, llm, settings=Settings(workers=2, max_parts=2))
    assert out.output == "Decaf? No thanks."
    assert any("unusable; skipped" in n for n in out.notes) and any("no joke was written" in n for n in out.notes)


def test_budget_during_rating_returns_the_best_rated_joke_so_far():
    llm = _crowd(lambda u, i: "4" if "mornings" in u else "2")
    # ideate 3 + analyse 3 + jokes 3 + first rating 3 = 12; the second rating does not fit
    out = run_pipeline("humor", {"id": "c", "topic": "coffee"}, llm, budget=Budget(max_calls=13))
    assert not out.complete and out.output == "Joke about mugs and coffee."


def test_evaluation_needs_the_joke_on_topic_and_short():
    ev = Evaluator(rules_llm([], choice_script=lambda m, c: [1.0 if x == "4" else 0.0 for x in c]))
    spec = get_pipeline("humor")
    ex = {"topic": "cats", "keywords": ["cat|kitten"], "max_words": 10}
    assert spec.evaluate(ev, ex, "My cat sits on my keyboard.")["quality"] == 0.75
    assert spec.evaluate(ev, ex, "Dogs are loud.")["quality"] == 0.0
    assert spec.evaluate(ev, ex, "cat " * 11)["short"] is False


def test_an_unusable_analysis_makes_room_for_the_next_association():
    llm = rules_llm([
        ("associate with this topic", "beans\nmugs\nmornings"),
        ("surprising twist", lambda u, i: "no idea" if "Association: beans" in u else "Expected: calm Twist: chaos"),
        ("Write one short joke", lambda u, i: f"Joke on {after(u, 'Association:').splitlines()[0]}."),
        ("How funny", "3"),
    ])
    out = run_pipeline("humor", {"id": "c", "topic": "coffee"}, llm, settings=Settings(workers=1, max_parts=2))
    assert list(out.details["ratings"]) == ["Joke on mugs.", "Joke on mornings."]
    analyses = [c for c in llm.calls if "surprising twist" in c["messages"][-1]["content"]]
    assert len(analyses) == 3

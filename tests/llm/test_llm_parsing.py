"""Answer parsing: a rating / choice / top-k list out of free model text, None when unclear."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdllm.llm.parsing import NUMBER_WORDS, parse_choice, parse_rating, parse_topk

WORD = {v: k for k, v in NUMBER_WORDS.items()}


@pytest.mark.parametrize("text, expected", [
    ("Rating: 4", 4),
    ("I'd say 4/5", 4),
    ("**4**", 4),
    ("four", 4),
    ("4 - somewhat offensive", 4),
    ("On a scale of 1 to 5, I would rate this a 3.", 3),
    ("1 = not offensive. My rating is 2", 2),
    ("Rating: Four", 4),
    ("3 out of 5", 3),
    ("Rating: 3.0", 3),
    ("  5\n", 5),
])
def test_rating_formats_models_write(text: str, expected: int) -> None:
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text", [
    "", "I cannot rate this.", "Rating: 7", "Rating: [1-5]", "3.5", "this one is rude", "Rating: -", None,
])
def test_unclear_ratings_are_none_never_a_default(text: str | None) -> None:
    assert parse_rating(text) is None


def test_rating_on_another_scale() -> None:
    assert parse_rating("Rating: 9", (1, 10)) == 9
    assert parse_rating("9/10", (1, 10)) == 9
    assert parse_rating("Rating: 9", (1, 5)) is None


_DECORATIONS = [
    "Rating: {v}", "rating: {v}", "**{v}**", "{v}", "I'd say {v}/5", "{v} out of 5", "{v} - my view",
    "Score = {v}", "My answer is {v}.", "{w}", "Rating: {w}", "`{v}`", "On a scale of 1 to 5: {v}",
]


@settings(max_examples=200, deadline=None)
@given(v=st.integers(1, 5), fmt=st.sampled_from(_DECORATIONS), pad=st.sampled_from(["", " ", "\n", "  \t"]))
def test_any_decorated_rating_round_trips(v: int, fmt: str, pad: str) -> None:
    text = pad + fmt.format(v=v, w=WORD[v]) + pad
    assert parse_rating(text) == v


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd", "No")), max_size=60))
def test_text_without_digits_or_labelled_number_words_is_none(text: str) -> None:
    lowered = text.lower()
    if any(w in lowered for w in NUMBER_WORDS):  # a bare number word may be a real answer
        return
    assert parse_rating(text) is None


@settings(max_examples=100, deadline=None)
@given(v=st.integers(1, 5), noise=st.text(alphabet="abcdefgh .,!?", max_size=30))
def test_labelled_rating_wins_over_surrounding_noise(v: int, noise: str) -> None:
    assert parse_rating(f"{noise} Rating: {v}. {noise}") == v


@pytest.mark.parametrize("text, expected", [
    ("Yes", "Yes"), ("yes.", "Yes"), ("No, I would not.", "No"), ("Answer: No", "No"),
    ("I think the answer is yes", "Yes"), ("**B**", "B"), ("Answer: A", "A"),
])
def test_choice_formats(text: str, expected: str) -> None:
    choices = ["A", "B"] if expected in ("A", "B") else ["Yes", "No"]
    assert parse_choice(text, choices) == expected


def test_ambiguous_or_missing_choice_is_none() -> None:
    assert parse_choice("maybe", ["Yes", "No"]) is None
    assert parse_choice("it could be yes and it could be no", ["Yes", "No"]) is None
    # the article "a" is not choice "A"
    assert parse_choice("a hard one", ["A", "B"]) is None


def test_numeric_choices_are_read_like_ratings() -> None:
    assert parse_choice("Rating: 4", ["1", "2", "3", "4", "5"]) == "4"
    assert parse_choice("Rating: 6", ["1", "2", "3", "4", "5"]) is None


@settings(max_examples=100, deadline=None)
@given(idx=st.integers(0, 3), fmt=st.sampled_from(["{c}", "Answer: {c}", "**{c}**", "{c}.", "I pick {c}"]))
def test_any_choice_round_trips(idx: int, fmt: str) -> None:
    choices = ["offensive", "neutral", "supportive", "off-topic"]
    assert parse_choice(fmt.format(c=choices[idx]), choices) == choices[idx]


ITEMS = [f"#{i}" for i in range(1, 25)]


@pytest.mark.parametrize("text, k, expected", [
    ("Projects 3, 7 and 12", 3, ["#3", "#7", "#12"]),
    ("#3, #7", 2, ["#3", "#7"]),
    ("Answer: #1, #2, #3, #4, #5", 5, ["#1", "#2", "#3", "#4", "#5"]),
    ("My top 5 of the 24 projects: 2, 4, 6, 8, 10", 5, ["#2", "#4", "#6", "#8", "#10"]),
    ("#3, #3, #7", 2, ["#3", "#7"]),
])
def test_topk_formats(text: str, k: int, expected: list[str]) -> None:
    assert parse_topk(text, ITEMS, k) == expected


def test_topk_wrong_count_or_unknown_items_is_none() -> None:
    assert parse_topk("#3, #7", ITEMS, 3) is None          # too few
    assert parse_topk("#3, #7, #9, #11", ITEMS, 3) is None  # too many
    assert parse_topk("#30, #40", ITEMS, 2) is None         # not items
    assert parse_topk("no idea", ITEMS, 2) is None


def test_topk_by_name_for_non_numeric_ids() -> None:
    items = ["park", "library", "bike lane"]
    assert parse_topk("I choose the library and the bike lane.", items, 2) == ["library", "bike lane"]


@settings(max_examples=150, deadline=None)
@given(picks=st.lists(st.integers(1, 24), min_size=1, max_size=6, unique=True),
       style=st.sampled_from(["#{}", "{}", "Project {}", "#{:02d}"]), sep=st.sampled_from([", ", " and ", "; ", "\n"]))
def test_any_ballot_round_trips(picks: list[int], style: str, sep: str) -> None:
    text = "Answer: " + sep.join(style.format(p) for p in picks)
    assert parse_topk(text, ITEMS, len(picks)) == [f"#{p}" for p in picks]

"""What workers say when they point at parts: numbers, ranges, 'all of them', 'none', quotes (property tests)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crowdllm.pipelines.parse import parse_option, parse_parts

PARTS = ["I am writing to let you know", "due to the fact that it rained", "we stayed inside",
         "and the picnic was moved", "to the following Sunday", "at noon"]
N = len(PARTS)

subsets = st.sets(st.integers(1, N), min_size=1, max_size=N)


def _and_list(nums: list[int]) -> str:
    words = [str(x) for x in nums]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@given(subsets, st.sampled_from(["{}", "Parts {}.", "parts {}", "The parts {} could be shorter.", "Part {}",
                                  "Answer: {}", "{} need work"]))
def test_any_set_of_numbers_reads_back_in_any_wording(nums, template):
    ordered = sorted(nums)
    for listing in (", ".join(map(str, ordered)), _and_list(ordered)):
        read = parse_parts(template.format(listing), PARTS)
        assert read.kind == "numbers" and read.numbers == frozenset(nums), (template, listing)


@given(st.integers(1, N), st.integers(1, N), st.sampled_from(["{}-{}", "{} - {}", "{} to {}", "parts {} through {}",
                                                              "{}\u2013{}"]))
def test_ranges_name_every_part_between(a, b, template):
    lo, hi = min(a, b), max(a, b)
    read = parse_parts(template.format(lo, hi), PARTS)
    assert read.numbers == frozenset(range(lo, hi + 1))


@given(st.sampled_from(["all of them", "All parts contain spelling or grammar errors.", "All", "every part",
                        "All of the parts are wordy.", "all 6 parts", "Each part needs work."]))
def test_all_of_them_names_every_part(answer):
    read = parse_parts(answer, PARTS)
    assert read.kind == "all" and read.numbers == frozenset(range(1, N + 1))


@given(st.sampled_from(["none", "None.", "None of them.", "No errors.", "nothing", "There are no errors.", "N/A",
                        "No part needs work."]))
def test_none_is_an_answer_naming_no_part(answer):
    read = parse_parts(answer, PARTS)
    assert read.kind == "none" and read.usable and not read.numbers


@given(st.integers(0, N - 1), st.sampled_from(['The part "{}" is wordy.', "\u201c{}\u201d", "'{}'", "`{}`",
                                               'Part "{}" and nothing else']))
def test_a_part_quoted_back_is_named_by_its_number(i, template):
    quoted = PARTS[i] if i % 2 else PARTS[i].split(" ", 2)[-1]  # the whole part, or the words inside it
    read = parse_parts(template.format(quoted), PARTS)
    assert i + 1 in read.numbers


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_answer_is_read_without_error_and_names_only_parts_that_exist(answer):
    read = parse_parts(answer, PARTS)
    assert read.kind in ("numbers", "all", "none", "unusable")
    assert all(1 <= k <= N for k in read.numbers)
    assert all(not 1 <= k <= N for k in read.out_of_range)
    assert (read.kind == "numbers") == bool(read.numbers and read.kind != "all")


def test_numbers_that_no_part_has_are_reported_and_garbage_abstains():
    assert parse_parts("2, 9", PARTS).numbers == frozenset({2}) and parse_parts("2, 9", PARTS).out_of_range == (9,)
    assert parse_parts("9", PARTS).kind == "unusable"
    assert parse_parts("%%% ??? zzz", PARTS).kind == "unusable"
    assert parse_parts("", PARTS).kind == "unusable"
    assert parse_parts("the second part", PARTS).numbers == frozenset({2})
    assert parse_parts("3.14", PARTS).kind == "unusable"  # a decimal is not a part number


@given(st.permutations(["the first version, which is rather long", "a second and shorter one", "a third"]),
       st.integers(0, 2), st.sampled_from(["{}", '"{}"', "I choose: \u201c{}\u201d"]))
def test_an_option_copied_or_quoted_back_is_found(options, i, template):
    assert parse_option(template.format(options[i]), options) == i
    assert parse_option("something else entirely", options) is None

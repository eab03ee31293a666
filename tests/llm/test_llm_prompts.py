"""Prompt templates: KV-cache-friendly layout, personas, safe insertion of data, user overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdllm.errors import ConfigError
from crowdllm.llm.prompts import (
    KINDS,
    available_templates,
    build_prompt,
    fill,
    get_template,
    load_template_set,
    persona_sentence,
)


def test_every_packaged_template_set_loads_and_default_covers_every_kind() -> None:
    names = available_templates()
    assert {"default", "popquorn-offensiveness", "zurich-pb-top5"} <= set(names)
    for name in names:
        load_template_set(name)
    assert set(load_template_set("default")) == set(KINDS)


def test_shared_part_is_a_common_prefix_and_the_task_text_comes_last() -> None:
    a = build_prompt("First comment.", kind="rating", template="popquorn-offensiveness")
    b = build_prompt("A different, longer second comment.", kind="rating", template="popquorn-offensiveness")
    assert a[:-2] == b[:-2]                        # system + worked examples identical
    assert a[-2]["role"] == "user" and a[-2]["content"].endswith("First comment.")
    assert a[-1] == {"role": "assistant", "content": "Rating: "}
    # the scale is written out in the system message, each point with its words
    assert "1 = Not offensive at all" in a[0]["content"] and "5 = Extremely offensive" in a[0]["content"]
    # two worked examples as user/assistant turns
    assert [m["role"] for m in a[1:5]] == ["user", "assistant", "user", "assistant"]


def test_scale_is_filled_in() -> None:
    msgs = build_prompt("x", kind="rating", scale=(0, 10))
    assert "from 0 to 10" in msgs[0]["content"]
    assert "\n10\n" in msgs[0]["content"] + "\n"


def test_data_text_is_never_read_as_a_placeholder() -> None:
    evil = "Ignore this {scale} and {k} and {low} }{ {{"
    msgs = build_prompt(evil, kind="rating")
    assert msgs[-2]["content"].endswith(evil)
    persona = {"Description": "I like {items} and {k}."}
    msgs = build_prompt("t", kind="rating", persona=persona)
    assert "I like {items} and {k}." in msgs[-2]["content"]


def test_fill_is_single_pass() -> None:
    assert fill("{a} {b} {unknown}", {"a": "{b}", "b": "B"}) == "{b} B {unknown}"


def test_persona_sentence_from_a_profile_like_the_paper() -> None:
    s = persona_sentence({"race": "White", "occupation": "Unemployed", "gender": "Man", "age": "30-34",
                          "education": "College degree"})
    assert s == "You are a white man aged 30 to 34, who is unemployed, with a college degree."


def test_persona_skips_missing_and_undisclosed_attributes() -> None:
    s = persona_sentence({"race": np.nan, "occupation": "Prefer not to disclose", "gender": "Woman", "age": ">65",
                          "education": None, "worker": "w1"})
    assert s == "You are a woman aged over 65."
    assert persona_sentence({}) == "You are a person."
    assert persona_sentence({"race": "Asian", "gender": "Non-binary"}) == "You are an Asian non-binary person."


def test_persona_uses_a_free_description_as_written_and_keeps_other_attributes() -> None:
    desc = "You are a university student from West district in Zurich."
    assert persona_sentence({"Description": desc, "District": "West"}) == desc
    s = persona_sentence({"gender": "Man", "District": "Nord"})
    assert s == "You are a man. Your district is Nord."


def test_persona_goes_in_the_last_user_message_before_the_text() -> None:
    msgs = build_prompt("Some comment.", kind="rating", template="popquorn-offensiveness",
                        persona={"gender": "Woman", "age": "18-24"})
    zero = build_prompt("Some comment.", kind="rating", template="popquorn-offensiveness")
    assert msgs[:-2] == zero[:-2]
    last = msgs[-2]["content"]
    assert last.startswith("You are a woman aged 18 to 24.") and last.endswith("Some comment.")


def test_topk_prompts_list_the_items_and_k() -> None:
    items = ["#1: a park", "#2: a library", "#3: a bike lane"]
    ballot = build_prompt(None, kind="topk", template="zurich-pb-top5", items=items, k=2,
                          persona="You are a student.")
    assert "#2: a library" in ballot[0]["content"] and "exactly 2" in ballot[0]["content"]
    assert ballot[-2]["content"].startswith("You are a student.")
    item = build_prompt("#3: a bike lane", kind="topk_item", template="zurich-pb-top5", items=items, k=2)
    assert "#3: a bike lane" in item[-2]["content"] and "Yes or No" in item[-2]["content"]
    with pytest.raises(ConfigError):
        build_prompt("x", kind="topk")


def test_choice_prompt_names_the_choices() -> None:
    msgs = build_prompt("x", kind="choice", choices=["hate", "offensive", "neither"])
    assert "hate, offensive or neither" in msgs[0]["content"]


def test_user_template_file_overrides_one_kind_and_keeps_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[rating]\nsystem = "Be brief."\ninstructions = "Scale {low}..{high}."\nanswer_prefix = "Score: "\n')
    msgs = build_prompt("x", kind="rating", template=f, scale=(1, 7))
    assert msgs[0]["content"] == "Be brief.\n\nScale 1..7."
    assert msgs[-1]["content"] == "Score: "
    assert get_template("choice", f).source == "template 'default'"
    j = tmp_path / "mine.json"
    j.write_text('{"text": {"system": "Rewrite politely."}}')
    assert build_prompt("hey you", kind="text", template=j)[0]["content"] == "Rewrite politely."


@pytest.mark.parametrize("content, message", [
    ('[rating]\nsystem = "x"\nsystem_prompt = "typo"\n', "unknown field"),
    ('[ratings]\nsystem = "x"\n', "unknown task type"),
    ('[rating]\ninstructions = "no system"\n', "system"),
    ("[rating\n", "not a valid TOML"),
])
def test_bad_template_files_name_the_file_and_the_problem(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        build_prompt("x", kind="rating", template=f)
    assert "bad.toml" in str(err.value)


def test_unknown_template_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="popquorn-offensiveness"):
        build_prompt("x", kind="rating", template="no-such-template")

"""Scripted fake crowds for the pipeline tests.

``rules_llm(rules)`` answers each prompt with the first rule whose key occurs in the last user message;
a rule's answer is a string or ``f(user_text, sample_index) -> str``. ``sensible_llm()`` is a crowd
that does every microtask of every pipeline in a plausible way; ``garbage_llm()`` answers everything
with nonsense, and ``choice_llm`` gives raters fixed probabilities.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from crowdllm.llm.fake import FakeLLM

Rule = tuple[str | tuple[str, ...], str | Callable[[str, int], str]]


def rules_llm(rules: Sequence[Rule], default: str = "", *, choice_script=None) -> FakeLLM:
    def script(messages, index, params):
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        for key, answer in rules:
            if any(k in user for k in ((key,) if isinstance(key, str) else key)):
                return answer(user, index) if callable(answer) else answer
        return default

    return FakeLLM(script, choice_script=choice_script)


#: the closing words of a vote prompt (lettered options, or short options copied by name)
VOTE = ("Answer with one letter", "Answer with one of them, copied exactly")


def options_of(prompt: str) -> dict[str, str]:
    """The options of a vote prompt, in the order shown: {answer to give: option text}. Lettered
    options answer with their letter; short options listed with '-' answer with their text."""
    lettered = {m.group(1): m.group(2).strip() for m in re.finditer(
        r"^([A-Z])\) (.*?)(?=\n\n[A-Z]\) |\n\nAnswer with)", prompt, re.M | re.S)}
    if lettered:
        return lettered
    named = re.findall(r"^- (.+)$", prompt.split("\n\nAnswer with")[0], re.M)
    return {t: t for t in named}


def answer_for(prompt: str, pick: Callable[[dict[str, str]], str]) -> str:
    """What a worker answers to choose the option ``pick`` returns (pick gets {answer: text})."""
    opts = options_of(prompt)
    chosen = pick(opts)
    return next(k for k, v in opts.items() if v == chosen)


def first_offered(prompt: str, i: int = 0) -> str:
    """A voter who follows position: answers the first of the two words offered ("Answer yes or no."
    -> "yes"). Counterbalanced steps offer the two in both orders, so such a crowd ties."""
    return prompt.rsplit("Answer ", 1)[1].split()[0]


def after(prompt: str, label: str) -> str:
    return prompt.split(label, 1)[1].strip() if label in prompt else ""


def _find(user: str, i: int) -> str:
    return "1"


def _sorted_items(user: str, i: int) -> str:
    items = re.findall(r"^- (.+)$", user, re.M)
    return "\n".join(sorted(items, key=lambda x: float(x) if x.replace(".", "").isdigit() else x))


def _smaller(user: str, i: int) -> str:
    return answer_for(user, lambda o: min(o.values(), key=lambda v: float(v) if v.isdigit() else len(v)))


SENSIBLE: list[Rule] = [
    ("at most 3 parts: answer with their numbers", _find),
    ("Rewrite only this part", "much shorter"),
    ("stay correct English after this change", "yes"),
    ("Write an improved version", lambda u, i: after(u, "Text:\n").split("\n\nWrite")[0] + " Thank you!"),
    (VOTE, lambda u, i: answer_for(u, lambda o: max(o.values(), key=len))),
    ("section headings", "Origins\nParts\nUses"),
    ("one short, true fact", lambda u, i: f"Fact number {i + 1} about {after(u, 'Section:').splitlines()[0]}."),
    ("Write one paragraph", "A short paragraph made from the facts."),
    ("associate with this topic", "beans\nmornings\nmugs"),
    ("surprising twist", "Expected: it wakes you up\nTwist: it keeps you up all night"),
    ("Write one short joke", lambda u, i: f"A joke about {after(u, 'Association:').splitlines()[0]} and coffee."),
    ("funny joke", "Coffee: the only bean that works harder than me."),
    ("How funny", "3"),
    (("SOLVE or", "or SOLVE"), "SOLVE"),
    ("Do this task", "Morning: exhibits. Lunch: cafe. Afternoon: planetarium with the kids."),
    ("complete the task well", "yes"),
    ("List the verbs", "bought"),
    ("question-answer pairs", "Who bought something? | Maria\nWhat did someone buy? | a used bike"),
    ("Is this answer correct", "yes"),
    ("Answer in a few words", "Wednesday"),
    ("Reply with the ordered list", _sorted_items),
    ("one line per question", "1. Wednesday\n2. 12"),
]


def sensible_answer(messages: list[dict[str, str]], index: int = 0) -> str:
    """The sensible crowd's answer to one chat prompt (for the fake OpenAI server too)."""
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    for key, answer in SENSIBLE:
        if any(k in user for k in ((key,) if isinstance(key, str) else key)):
            return answer(user, index) if callable(answer) else answer
    return "ok"


def sensible_llm() -> FakeLLM:
    return rules_llm(SENSIBLE, default="ok", choice_script=lambda m, c: [1.0] * len(c))


def garbage_llm() -> FakeLLM:
    return FakeLLM("%%% ??? zzz", choice_script=lambda m, c: [1.0] * len(c))

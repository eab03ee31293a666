"""What was asked: the question and the meaning of each answer level, put into the LLM reference prompt.

A user's own data set arrives as ids and answers; the LLM reference must still know what people were
asked. :class:`Question` holds the question text (``"Is this comment toxic?"``), the words for each
answer (``{"-1": "not toxic", "1": "toxic"}``) or, instead, prompt templates: packaged names or
.toml/.json files (several are wordings of the same question: each task is asked once per wording and the
answers averaged; :mod:`crowdllm.llm.reference`). :meth:`Question.template` turns them into the
``template`` argument of :func:`crowdllm.llm.reference.compute_references` (the question and level words
through the packaged template's fields: the question goes in the ``question`` line after the text, the
level words into ``scale_labels`` for ratings and into the instructions for choices).

Saved in the model card by :meth:`Question.to_dict` (``templates``: the names and file paths as given);
:meth:`Question.from_dict` also reads a card written before several wordings (one ``template_file``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crowdllm.data.dataset import LabelSpec, category_text
from crowdllm.errors import ConfigError
from crowdllm.study.kinds import level_names


def parse_levels(text: str | None, *, setting: str = "--levels") -> dict[str, str]:
    """``"-1=not toxic,1=toxic"`` -> ``{"-1": "not toxic", "1": "toxic"}`` (level keys as category text)."""
    if text is None or not text.strip():
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, words = part.partition("=")
        if not sep or not key.strip() or not words.strip():
            raise ConfigError(f"{setting}: '{part.strip()}' is not LEVEL=WORDS (e.g. {setting} \"-1=not toxic,1=toxic\")")
        level = category_text(key.strip())
        if level in out:
            raise ConfigError(f"{setting}: level '{level}' is given twice")
        out[level] = " ".join(words.split())
    return out


@dataclass
class Question:
    """The question people answered and the words for its answers, or prompt templates (packaged names or
    .toml/.json files, as given; several are wordings averaged, one LLM call per task each)."""

    text: str = ""
    levels: dict[str, str] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)

    @property
    def given(self) -> bool:
        return bool(self.text or self.levels or self.templates)

    def check(self, label: LabelSpec) -> None:
        """Every level named must be a level of the label (errors name --levels)."""
        if not self.levels:
            return
        known = level_names(label)
        if not known:
            raise ConfigError(f"--levels names answer levels; a {label.kind} label has none (use --question)")
        for level in self.levels:
            if level not in known:
                raise ConfigError(f"--levels: '{level}' is not a level of the label ({', '.join(known)})")

    def template(self, label: LabelSpec, default: Any = None) -> Any:
        """The reference prompt's template: the user's template (a list of them for several wordings), else
        a mapping built on the default, else the default."""
        if self.templates:
            return self.templates[0] if len(self.templates) == 1 else list(self.templates)
        if not self.text and not self.levels:
            return default
        from crowdllm.llm.prompts import get_template

        kind = "choice" if label.kind_.nominal else "rating"
        base = get_template(kind, default)
        table: dict[str, Any] = {"system": base.system, "instructions": base.instructions,
                                 "item_label": base.item_label, "persona_note": base.persona_note,
                                 "answer_prefix": base.answer_prefix, "question": base.question,
                                 "scale_labels": dict(base.scale_labels),
                                 "examples": [{"text": t, "answer": a} for t, a in base.examples]}
        if self.text:
            table["question"] = self.text
            table["instructions"] = f"The question is: {self.text}\n" + base.instructions
        if self.levels:
            if kind == "rating":
                table["scale_labels"] = {**table["scale_labels"], **self.levels}
            else:
                meaning = "\n".join(f"{lvl} = {words}" for lvl, words in self.levels.items())
                table["instructions"] = table["instructions"] + f"\nThe answers mean:\n{meaning}"
        return {kind: table}

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.text, "levels": dict(self.levels), "templates": list(self.templates)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Question:
        d = d or {}
        templates = d.get("templates")
        if templates is None:  # a card written before several wordings: one template file or none
            templates = [d["template_file"]] if d.get("template_file") else []
        return cls(text=str(d.get("question") or ""), levels=dict(d.get("levels") or {}),
                   templates=[str(t) for t in templates])

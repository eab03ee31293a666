"""Prompt templates and the prompt strategies of the CrowdLLM paper.

Templates live in package data files (``crowdllm/llm/templates/*.toml``), one table per task type:

- ``rating``    a number on a scale (offensiveness 1-5),
- ``choice``    one label from a fixed set,
- ``topk``      pick ``k`` of a list of items (a participatory-budgeting ballot),
- ``topk_item`` yes/no: would a voter put this one item among their ``k`` picks (log-prob references),
- ``text``      free text (rewrite, answer).

``build_prompt`` turns a task into chat messages laid out for reuse of the model's KV cache: the long
shared part (system message with the instructions and the scale, then the worked examples) comes first
and is identical for every task; the task text, with the persona for multi-persona prompting, comes
last, followed by the answer prefix as a trailing assistant message (``"Rating: "``).

Strategies: *zero-shot* (``persona=None``), *multi-persona* (``persona=`` a profile dict, or a persona
sentence such as the Zurich voters' ``Description``) and *self-consistency* (the zero-shot prompt sampled
k times at temperature 0.5, see :mod:`crowdllm.llm.reference`).

Data text is never formatted into a template: it travels as its own message content. Placeholders
(``{low}``, ``{scale}``, ``{k}``, ``{items}``...) are filled in one pass by :func:`fill`, so a brace in an
inserted value is never read as a placeholder.

>>> msgs = build_prompt("You are all idiots.", kind="rating", template="popquorn-offensiveness")
>>> [m["role"] for m in msgs]
['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']
>>> msgs[-1]["content"]
'Rating: '
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from crowdllm.errors import ConfigError

KINDS: tuple[str, ...] = ("rating", "choice", "topk", "topk_item", "text")
DEFAULT_SET = "default"
_FIELDS = {"system", "instructions", "item_label", "question", "persona_note", "answer_prefix",
           "scale_labels", "examples"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class PromptTemplate:
    """The wording for one task type (see ``templates/default.toml`` for what each field does)."""

    kind: str
    system: str
    instructions: str = ""
    item_label: str = "Text"
    question: str = ""
    persona_note: str = ""
    answer_prefix: str = ""
    scale_labels: Mapping[str, str] = field(default_factory=dict)
    examples: tuple[tuple[str, str], ...] = ()
    source: str = DEFAULT_SET

    @classmethod
    def from_dict(cls, kind: str, d: Mapping[str, Any], source: str) -> PromptTemplate:
        unknown = set(d) - _FIELDS
        if unknown:
            raise ConfigError(f"{source}: [{kind}] has unknown field(s) {', '.join(sorted(unknown))}; "
                              f"allowed: {', '.join(sorted(_FIELDS))}")
        if not isinstance(d.get("system", ""), str) or not d.get("system"):
            raise ConfigError(f"{source}: [{kind}] needs a non-empty 'system' text")
        for key in ("instructions", "item_label", "question", "persona_note", "answer_prefix"):
            if key in d and not isinstance(d[key], str):
                raise ConfigError(f"{source}: [{kind}] field '{key}' must be text")
        labels = d.get("scale_labels", {}) or {}
        if not isinstance(labels, Mapping):
            raise ConfigError(f"{source}: [{kind}] 'scale_labels' must be a table like {{ 1 = \"Not at all\" }}")
        examples = []
        for i, ex in enumerate(d.get("examples", []) or []):
            if not isinstance(ex, Mapping) or not isinstance(ex.get("text"), str) or "answer" not in ex:
                raise ConfigError(f"{source}: [{kind}] example {i + 1} needs 'text' and 'answer'")
            examples.append((ex["text"], str(ex["answer"])))
        return cls(
            kind=kind, system=d["system"], instructions=d.get("instructions", ""),
            item_label=d.get("item_label", "Text"), question=d.get("question", ""),
            persona_note=d.get("persona_note", ""), answer_prefix=d.get("answer_prefix", ""),
            scale_labels={str(k): str(v) for k, v in labels.items()}, examples=tuple(examples), source=source,
        )


# ------------------------------------------------------------------------------ loading
def available_templates() -> list[str]:
    """Names of the template sets shipped with crowdllm."""
    folder = resources.files("crowdllm.llm") / "templates"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith((".toml", ".json")))


def _parse_file(text: str, source: str, is_json: bool) -> dict[str, Any]:
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{source}: not a valid {'JSON' if is_json else 'TOML'} template file: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a template file holds one table per task type ({', '.join(KINDS)})")
    return data


def _to_set(data: Mapping[str, Any], source: str) -> dict[str, PromptTemplate]:
    out = {}
    for kind, table in data.items():
        if kind not in KINDS:
            raise ConfigError(f"{source}: unknown task type [{kind}]; use one of {', '.join(KINDS)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{kind}] must be a table of fields")
        out[kind] = PromptTemplate.from_dict(kind, table, source)
    return out


@lru_cache(maxsize=32)
def _packaged(name: str) -> dict[str, PromptTemplate]:
    folder = resources.files("crowdllm.llm") / "templates"
    for ext in (".toml", ".json"):
        res = folder / f"{name}{ext}"
        if res.is_file():
            return _to_set(_parse_file(res.read_text(encoding="utf-8"), f"template '{name}'", ext == ".json"),
                           f"template '{name}'")
    raise ConfigError(f"unknown template '{name}': give a .toml/.json file or one of {', '.join(available_templates())}")


def load_template_set(template: str | Path | Mapping[str, Any] | None = None) -> dict[str, PromptTemplate]:
    """Templates per task type from a packaged name, a user file, or a mapping; missing task types fall
    back to the packaged defaults."""
    merged = dict(_packaged(DEFAULT_SET))
    if template is None:
        return merged
    if isinstance(template, Mapping):
        data = template
        if any(k in _FIELDS for k in template):
            raise ConfigError("a template mapping holds one table per task type, e.g. {'rating': {'system': ...}}")
        merged.update(_to_set(data, "template mapping"))
        return merged
    path = Path(template)
    looks_like_file = path.suffix.lower() in (".toml", ".json") or path.exists()
    if looks_like_file:
        if not path.is_file():
            raise ConfigError(f"template file {path} does not exist")
        merged.update(_to_set(_parse_file(path.read_text(encoding="utf-8"), str(path),
                                          path.suffix.lower() == ".json"), str(path)))
        return merged
    merged.update(_packaged(str(template)))
    return merged


def get_template(kind: str, template: str | Path | Mapping[str, Any] | PromptTemplate | None = None) -> PromptTemplate:
    """The template for task type ``kind`` (see :func:`load_template_set`)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown task type '{kind}'; use one of {', '.join(KINDS)}")
    if isinstance(template, PromptTemplate):
        return template if template.kind == kind else replace(template, kind=kind)
    templates = load_template_set(template)
    return templates[kind]


# ------------------------------------------------------------------------------ filling
def fill(text: str, values: Mapping[str, Any]) -> str:
    """Replace ``{name}`` placeholders in ONE pass; unknown names are left as written.

    Inserted values are never scanned again, so a value containing ``{k}`` stays literally ``{k}``."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def scale_text(template: PromptTemplate, scale: tuple[int, int]) -> str:
    """The scale written out, one line a point ("1 = Not offensive at all")."""
    lo, hi = int(scale[0]), int(scale[1])
    lines = []
    for v in range(lo, hi + 1):
        label = template.scale_labels.get(str(v))
        lines.append(f"{v} = {label}" if label else str(v))
    return "\n".join(lines)


def _values(template: PromptTemplate, *, scale: tuple[int, int] | None, items: Sequence[str] | None,
            k: int | None, choices: Sequence[str] | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if scale is not None:
        values.update(low=int(scale[0]), high=int(scale[1]), scale=scale_text(template, scale))
    if items is not None:
        values.update(items="\n".join(str(i) for i in items), n_items=len(items))
    if k is not None:
        values["k"] = int(k)
    if choices is not None:
        cs = [str(c) for c in choices]
        values["choices"] = cs[0] if len(cs) == 1 else ", ".join(cs[:-1]) + " or " + cs[-1]
    return values


# ------------------------------------------------------------------------------ personas
_MISSING = {"", "nan", "none", "other", "prefer not to disclose", "prefer not to say", "unknown", "n/a", "na"}
_GENDER = {"man": "man", "male": "man", "men": "man", "woman": "woman", "female": "woman", "women": "woman",
           "non-binary": "non-binary person", "nonbinary": "non-binary person", "non binary": "non-binary person"}
_RACE = {"white": "white", "black or african american": "Black", "black": "Black",
         "african american": "African American", "asian": "Asian", "native american": "Native American",
         "hispanic or latino": "Hispanic", "hispanic": "Hispanic", "latino": "Latino",
         "arab american": "Arab American", "pacific islander": "Pacific Islander"}
_OCCUPATION = {"employed": "who is employed", "self-employed": "who is self-employed",
               "unemployed": "who is unemployed", "retired": "who is retired", "student": "who is a student",
               "homemaker": "who is a homemaker"}
_EDUCATION = {"college degree": "with a college degree", "graduate degree": "with a graduate degree",
              "high school diploma or equivalent": "with a high school diploma",
              "high school diploma": "with a high school diploma",
              "less than a high school diploma": "without a high school diploma"}
_KEYS = {"description": ("description", "persona"), "race": ("race", "ethnicity"), "gender": ("gender", "sex"),
         "age": ("age", "age_group", "age band"), "occupation": ("occupation", "employment"),
         "education": ("education",)}
_SKIP = {"worker", "id", "user_id", "worker_id"}


def _present(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    s = " ".join(str(value).split())
    return None if s.lower() in _MISSING else s


def _age_phrase(age: str) -> str:
    m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", age)
    if m:
        return f"aged {m.group(1)} to {m.group(2)}"
    m = re.fullmatch(r"(?:>|>=|over\s*)(\d+)|(\d+)\s*\+", age)
    if m:
        return f"aged over {m.group(1) or m.group(2)}"
    m = re.fullmatch(r"(?:<|under\s*)(\d+)", age)
    if m:
        return f"aged under {m.group(1)}"
    return f"aged {age}"


def persona_sentence(profile: Mapping[str, Any] | str | None) -> str:
    """A second-person persona sentence from a profile.

    A free ``Description`` (or ``persona``) field is used as written. Otherwise the sentence is built
    from race, gender, age, occupation and education (as in the paper's multi-persona prompt); missing
    or undisclosed attributes are left out, and any other attribute is added as "Your <name> is <value>."

    >>> persona_sentence({"race": "White", "gender": "Man", "age": "30-34", "occupation": "Unemployed",
    ...                   "education": "College degree"})
    'You are a white man aged 30 to 34, who is unemployed, with a college degree.'
    >>> persona_sentence({"gender": "Woman"})
    'You are a woman.'
    """
    if profile is None:
        return ""
    if isinstance(profile, str):
        return " ".join(profile.split())
    lower = {str(k).strip().lower(): v for k, v in profile.items()}
    found: dict[str, str] = {}
    used: set[str] = set()
    for role, names in _KEYS.items():
        for name in names:
            if name in lower:
                used.add(name)
                value = _present(lower[name])
                if value is not None and role not in found:
                    found[role] = value
    if "description" in found:
        return found["description"]
    noun = _GENDER.get(found.get("gender", "").lower(), "person")
    race = found.get("race")
    head = f"{_RACE.get(race.lower(), race)} {noun}" if race else noun
    article = "an" if head[:1].lower() in "aeiou" else "a"
    parts = [f"You are {article} {head}"]
    if "gender" in found and found["gender"].lower() not in _GENDER:
        parts[0] += f" (gender: {found['gender']})"
    if "age" in found:
        parts[0] += " " + _age_phrase(found["age"])
    if "occupation" in found:
        occ = found["occupation"]
        parts.append(_OCCUPATION.get(occ.lower(), f"whose occupation is {occ}"))
    if "education" in found:
        edu = found["education"]
        parts.append(_EDUCATION.get(edu.lower(), f"whose education is {edu}"))
    sentence = ", ".join(parts) + "."
    extras = []
    for key, value in lower.items():
        if key in used or key in _SKIP:
            continue
        v = _present(value)
        if v is not None:
            extras.append(f"Your {key} is {v}.")
    return " ".join([sentence, *extras])


# ------------------------------------------------------------------------------ building prompts
def build_prompt(
    task_text: str | None,
    *,
    kind: str = "rating",
    persona: Mapping[str, Any] | str | None = None,
    template: str | Path | Mapping[str, Any] | PromptTemplate | None = None,
    scale: tuple[int, int] | None = (1, 5),
    items: Sequence[str] | None = None,
    k: int | None = None,
    choices: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one task.

    ``kind``: one of :data:`KINDS`. ``persona``: a profile dict or a persona sentence (multi-persona
    prompting); ``None`` for zero-shot. ``template``: a packaged name ("popquorn-offensiveness"), a
    user TOML/JSON file, a mapping, or a :class:`PromptTemplate`; default: the generic template.
    ``items``/``k`` describe a top-k vote; ``choices`` the allowed answers of a ``choice`` task.

    Layout: system (instructions, scale, item list), worked examples as user/assistant turns, then the
    user turn with [persona sentence + note] + label + task text [+ question], then the answer prefix as
    a trailing assistant message (omitted when the template's prefix is empty)."""
    tpl = get_template(kind, template)
    if kind in ("topk", "topk_item") and (not items or k is None):
        raise ConfigError(f"a '{kind}' prompt needs the list of items and k")
    if kind == "choice" and not choices:
        raise ConfigError("a 'choice' prompt needs the allowed choices")
    values = _values(tpl, scale=scale if kind == "rating" else None, items=items, k=k, choices=choices)
    system = fill(tpl.system, values)
    if tpl.instructions:
        system = system + "\n\n" + fill(tpl.instructions, values)
    messages: list[dict[str, str]] = [{"role": "system", "content": system}]
    label = fill(tpl.item_label, values)
    for text, answer in tpl.examples:
        messages.append({"role": "user", "content": _user_content(label, text, None, "", "")})
        messages.append({"role": "assistant", "content": fill(tpl.answer_prefix, values) + answer})
    sentence = persona_sentence(persona) if persona is not None else ""
    messages.append({"role": "user", "content": _user_content(
        label, task_text, sentence, fill(tpl.persona_note, values), fill(tpl.question, values))})
    if tpl.answer_prefix:
        messages.append({"role": "assistant", "content": fill(tpl.answer_prefix, values)})
    return messages


def _user_content(label: str, text: str | None, persona: str | None, note: str, question: str) -> str:
    # plain concatenation: the data text is never parsed for placeholders
    parts = []
    if persona:
        parts.append(persona + (" " + note if note else ""))
    if text is not None and str(text) != "":
        parts.append((label + ":\n" if label else "") + str(text))
    if question:
        parts.append(question)
    return "\n\n".join(parts) if parts else (label or "")


def answer_prefix(kind: str, template: str | Path | Mapping[str, Any] | PromptTemplate | None = None) -> str:
    """The answer prefix the template puts in the trailing assistant message (prepend it before parsing)."""
    return get_template(kind, template).answer_prefix

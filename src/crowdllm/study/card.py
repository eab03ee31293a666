"""The model card written next to a saved crowd: ``card.json`` (the facts) and ``CARD.md`` (made from it).

It says what the crowd was fitted on (data, label, profile attributes), how it was asked (question,
reference model, template, strategy), how long it took, and how far to trust it: validation numbers on
held-out training people and tasks, next to the global baseline and the noise ceiling, and the interval
for a real crowd's mean with the coverage it reached there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crowdllm._io import atomic_write_json, atomic_write_text
from crowdllm.errors import ConfigError

CARD_VERSION = 1
CARD_JSON = "card.json"
CARD_MD = "CARD.md"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


def render_card(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    d, lab, q, ref = card["data"], card["label"], card.get("question") or {}, card.get("reference") or {}
    lines = [f"# Digital crowd: {d.get('name', 'custom')}", ""]
    lines += ["## Data", "",
              f"- source: {d.get('source') or 'n/a'}",
              f"- {d['responses']:,} responses, {d['tasks']:,} tasks, {d['workers']:,} people"
              + (f" ({d['dropped_rows']:,} rows left out)" if d.get("dropped_rows") else ""),
              f"- label: {label_text(lab)}", ""]
    if d.get("description"):
        lines += [f"  {d['description']}", ""]
    lines += ["## What was asked", ""]
    templates = list(q.get("templates") or [])
    if q.get("question") or q.get("levels") or q.get("template_file") or templates:
        if q.get("question"):
            lines.append(f"- question: {q['question']}")
        for level, words in (q.get("levels") or {}).items():
            lines.append(f"- answer {level} = {words}")
        if q.get("template_file"):  # a card written before several wordings
            lines.append(f"- template file: {q['template_file']}")
        lines += wordings_text(templates)
    elif ref.get("template"):
        lines.append(f"- the packaged prompt template '{ref['template']}' (its question and answer words)")
    else:
        lines.append("- no question given: the reference prompt names only the allowed answers")
    lines += ["", "## Profile attributes", ""]
    for col, info in (card.get("profiles") or {}).items():
        lines.append(f"- {col}: {info}")
    if not card.get("profiles"):
        lines.append("- (none)")
    lines += ["", "## Reference", ""]
    if ref:
        template = ref.get("template")
        template = " + ".join(map(str, template)) if isinstance(template, list) else (template or "default")
        lines += [f"- model: {ref.get('backend', '?')} / {ref.get('model', '?')}",
                  f"- strategy: {ref.get('strategy', '?')}; template: {template}",
                  f"- tasks with a reference: {ref.get('tasks', 0):,} (missing: {ref.get('missing', 0):,})"]
    else:
        lines.append("- none (VAE only)")
    lines += [f"- text embedder: {card.get('embedder', '?')}",
              f"- training time: {card.get('training_seconds', float('nan')):.1f} s", ""]
    v = card.get("validation")
    lines += ["## Validation (held-out training people and tasks)", ""]
    if v:
        parts = [v] + ([v["by_tasks"]] if v.get("by_tasks") else [])
        for part in parts:
            what = ("held-out people on held-out tasks" if part.get("split", "both") == "both"
                    else "held-out tasks, all their people")
            lines += [f"{what}: {part['n_tasks']} tasks, {part['n_people']} people, {part['n_responses']:,} answers "
                      f"(seed {v.get('seed', 0)})", "",
                      "| | " + " | ".join(part["metrics"]) + " |", "|---|" + "---|" * len(part["metrics"])]
            for row in ("crowd", "global", "noise-ceiling"):
                vals = part["table"].get(row, {})
                lines.append(f"| {row} | " + " | ".join(_fmt(vals.get(m, float('nan'))) for m in part["metrics"])
                             + " |")
            lines.append("")
        iv = v.get("interval")
        if iv:
            lines.append(interval_text(iv))
        lines.append("Lower is better for every number; the noise ceiling is the best any model can do.")
    else:
        lines.append("- not measured (too few people or tasks to hold some out)" if "validation" in card
                     else "- not measured (fitted with --no-validation)")
    lines.append("")
    return "\n".join(lines)


def wordings_text(templates: list[str]) -> list[str]:
    """The card's lines on the prompt templates the crowd asks new tasks with (names or files, as given)."""
    if len(templates) == 1:
        return [f"- prompt template: {templates[0]}"]
    if not templates:
        return []
    return [f"- {len(templates)} wordings of the question, each task asked once per wording and the answers "
            f"averaged ({len(templates)} LLM calls per task, new tasks too):",
            *[f"  {i + 1}. {t}" for i, t in enumerate(templates)]]


def interval_text(iv: dict[str, Any]) -> str:
    """The card's line on the interval for a real crowd's mean (old cards: one half-width for all tasks)."""
    reached = (f"target {iv['level']:.0%}; reached {iv['coverage']:.0%} on {iv['n_check']} held-out tasks "
               "not used to size it")
    if "q" not in iv:
        return (f"Interval for a real crowd's mean: crowd mean ± {iv['halfwidth']:.3f} ({reached}; real crowds of "
                f"about {iv['people_per_task']:g} people).")
    people = iv["people_per_task"]
    if not iv["q"] < float("inf"):
        return (f"Interval for a real crowd's mean: too few held-out tasks ({iv['calibration_tasks']}) to size a "
                f"{iv['level']:.0%} interval, so it spans the whole scale ({reached}).")
    return (f"Interval for a real crowd's mean: crowd mean ± q·sqrt(tau² + v/n), wider for a task whose virtual "
            f"answers spread more (v, their variance) and for a smaller real crowd (n people); typically "
            f"± {iv['halfwidth']:.3f} (n = {people:g}, the held-out tasks' median, at the median v "
            f"{iv['var_median']:.2f}); tau {iv['tau']:.3f}, q {iv['q']:.2f} from {iv['calibration_tasks']} "
            f"held-out tasks ({reached}). `crowd sample --real-crowd N` sizes it for another crowd.")


def label_text(lab: dict[str, Any]) -> str:
    from crowdllm.data.dataset import LabelSpec

    spec = LabelSpec.from_dict(lab)
    if spec.kind_.nominal:
        return "categorical: " + ", ".join(spec.categories or ())
    return spec.kind_.describe(spec)


def write_card(directory: str | Path, card: dict[str, Any]) -> None:
    directory = Path(directory)
    card = {"card_version": CARD_VERSION, **card}
    atomic_write_json(directory / CARD_JSON, card)
    atomic_write_text(directory / CARD_MD, render_card(card))


def read_card(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CARD_JSON
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no model card here (is this a folder written by 'crowdllm crowd fit'?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: damaged model card ({type(err).__name__})") from None
    if not isinstance(card, dict) or "data" not in card or "label" not in card:
        raise ConfigError(f"{path}: damaged model card (no data/label section)")
    version = card.get("card_version", 0)
    if not isinstance(version, int) or version > CARD_VERSION:
        raise ConfigError(f"{path}: card version {version!r} is newer than this crowdllm understands "
                          f"({CARD_VERSION}); upgrade crowdllm")
    return card

"""Built-in example inputs (written for this project, one JSON file per pipeline) and real inputs.

Each file holds a list of examples: an ``id``, the input field the pipeline reads (``text``, ``topic``,
``task``, ``sentence``, ``job``) and what the evaluation checks (``must_cover`` keywords, known
``errors``, gold question-answer pairs, a gold order or gold answers).

Real inputs for the editing pipelines (Find-Fix-Verify, iterative): the original emails of POPQUORN's
email-rewriting task (Pei & Jurgens 2023), read at run time through the data registry.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from crowdllm.errors import ConfigError, CrowdDataError

POPQUORN_EMAILS = "popquorn-email-rewriting"


def load_examples(pipeline: str) -> list[dict[str, Any]]:
    """The built-in examples of one pipeline."""
    name = f"{pipeline}.json"
    try:
        raw = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"pipeline '{pipeline}' has no built-in examples") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CrowdDataError(f"bad JSON ({err.msg})", file=name, row=err.lineno) from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and "id" in e for e in data):
        raise CrowdDataError("expected a list of objects each with an 'id'", file=name)
    return data


def popquorn_examples(n: int = 3, *, seed: int = 0, min_words: int = 12, max_words: int = 80,
                      goal: str = "polite") -> list[dict[str, Any]]:
    """``n`` original emails from POPQUORN's rewriting task (``min_words``..``max_words`` words), in the
    order of a permutation drawn with ``seed`` (so the first ``n`` of a larger draw are the same
    emails); each example asks for the POPQUORN task: a more polite email with the same meaning."""
    try:
        from crowdllm.data import load_dataset  # type: ignore[attr-defined]
    except ImportError:
        raise ConfigError("the POPQUORN email data needs crowdllm.data.load_dataset, "
                          "which this installation does not have") from None
    from crowdllm._io import rng
    from crowdllm.pipelines._text import n_words

    ds = load_dataset(POPQUORN_EMAILS)
    tasks = ds.tasks.drop_duplicates("task")
    lengths = tasks["text"].astype(str).map(n_words)
    pool = tasks[(lengths >= min_words) & (lengths <= max_words)].sort_values("task")
    if pool.empty:
        raise CrowdDataError(f"no email of {min_words}-{max_words} words", file=POPQUORN_EMAILS)
    pick = rng(seed).permutation(len(pool))[: max(0, n)]
    out = []
    for i in pick:
        row = pool.iloc[int(i)]
        out.append({"id": f"popquorn-{row['task']}", "text": str(row["text"]).strip(), "goal": goal,
                    "source": POPQUORN_EMAILS})
    return out

"""What the LLM-based and CrowdLLM methods share: the task kind, and LLM references per task.

Options a method factory reads from ``ExperimentContext.options`` (all optional):

- ``llm``: a :class:`~crowdllm.llm.base.LanguageModel` (cached + metered; see ``open_backend``);
- ``template``: the prompt template name or file (default: the data set's packaged template if any);
- ``reference``: a precomputed reference frame for the data set's tasks (``y_ref`` + ``p_*``), e.g. from
  ``crowdllm reference``; tasks missing from it are asked of ``llm``;
- ``reference_strategy``: ``logprob`` (default on backends with log-probabilities) or ``zero-shot``
  (K = ``reference_k`` samples at temperature 0, the paper's K = 8);
- ``persona_budget``: the most multi-persona calls one fit/sample may make (default 300);
- ``crowd``: extra :class:`~crowdllm.crowd.DigitalCrowd` hyper-parameters (a dict);
- ``embedder``: ``auto`` | ``minilm`` | ``hashing``.

References are kept per (strategy, task) in ``options["_refs"]`` when the caller passes a dict there,
so seeds and methods of one run share them; every LLM call also goes through the backend's disk cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from crowdllm.crowd.kinds import kind_of
from crowdllm.crowd.reference import reference_frame
from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError

DEFAULT_PERSONA_BUDGET = 300


def int_option(options: Mapping[str, Any], name: str, default: int) -> int:
    """``options[name]`` as a whole number (the CLI passes ``--option name=VALUE`` as text)."""
    value = options.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name}={value!r}: give a whole number") from None


def mapping_option(options: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``options[name]`` as a dict of keyword arguments (from Python, or ``--crowd-param`` for ``crowd``)."""
    value = options.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"option {name}={value!r}: give a mapping of settings, e.g. "
                          f"options={{'{name}': {{'epochs': 50}}}}")
    return dict(value)


def reference_kind(label: LabelSpec) -> str:
    """What the LLM is asked for ``label``: rating, choice, topk (text for free-text labels)."""
    kind = kind_of(label)
    return kind.reference_kind if kind is not None else "text"


def reference_args(label: LabelSpec) -> dict[str, Any]:
    """The keyword arguments that describe ``label``'s answers to :func:`compute_references`."""
    kind = kind_of(label)
    return kind.reference_args(label) if kind is not None else {}


def default_template(dataset: str, options: Mapping[str, Any]) -> Any:
    if options.get("template") is not None:
        return options["template"]
    from crowdllm.llm.prompts import available_templates

    return dataset if dataset in available_templates() else None


def default_strategy(llm: Any, options: Mapping[str, Any]) -> str:
    strategy = options.get("reference_strategy")
    if strategy:
        return str(strategy)
    return "logprob" if getattr(llm, "supports_logprobs", False) else "zero-shot"


def references(tasks: pd.DataFrame, label: LabelSpec, options: Mapping[str, Any], *, dataset: str,
               strategy: str | None = None, k: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Reference rows (index task) for every task in ``tasks``.

    ``strategy=None``: the run's reference -- ``options['reference']`` where it has the task, else asked
    of ``options['llm']`` with the default strategy. An explicit ``strategy`` always uses the LLM (its
    disk cache makes repeats free). Results are memoised in ``options['_refs']`` when that is a dict."""
    llm = options.get("llm")
    given = options.get("reference")
    given_strategy = _strategy_of(given) if given is not None else None
    use_given = strategy is None or (given_strategy is not None and strategy == given_strategy
                                     and (strategy == "logprob" or k is None))
    strategy = strategy or given_strategy or (default_strategy(llm, options) if llm is not None else "logprob")
    k = int(k) if k is not None else int_option(options, "reference_k", 8)
    ids = list(dict.fromkeys(tasks["task"].astype(str).tolist()))
    memo = options.get("_refs")
    key = (strategy, k)
    parts: list[pd.DataFrame] = []
    if use_given and given is not None:
        g = reference_frame(given)
        parts.append(g[g.index.isin(ids)])
    if isinstance(memo, dict) and key in memo:
        parts.append(memo[key][memo[key].index.isin(ids)])
    have = pd.concat(parts) if parts else pd.DataFrame(columns=["y_ref"])
    have = have[~have.index.duplicated(keep="first")]
    need = [t for t in ids if t not in have.index]
    if need:
        if llm is None:
            raise ConfigError(f"no LLM reference for {len(need)} task(s) (first: '{need[0]}') and no LLM "
                              "backend to ask; pass options['llm'] or a reference table")
        from crowdllm.llm.reference import compute_references

        frame = tasks[tasks["task"].astype(str).isin(need)].drop_duplicates("task")
        new = compute_references(frame, llm, kind=reference_kind(label), strategy=strategy, k=k,
                                 template=default_template(dataset, options), progress=False, seed=seed,
                                 **reference_args(label))
        new.index = new.index.astype(str)
        if isinstance(memo, dict):
            memo[key] = pd.concat([memo[key], new]) if key in memo else new
        have = pd.concat([have, new])
    return have.reindex(ids)


def _strategy_of(reference: Any) -> str | None:
    """The strategy a reference table was made with (its attrs, or its ``strategy`` column)."""
    strategy = getattr(reference, "attrs", {}).get("strategy")
    if strategy is None and isinstance(reference, pd.DataFrame) and "strategy" in reference.columns:
        values = reference["strategy"].dropna().unique()
        strategy = str(values[0]) if len(values) == 1 else None
    return str(strategy) if strategy is not None else None

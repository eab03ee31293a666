"""Linear baselines on the inputs CrowdLLM reads, for the runner.

- ``text-ridge``: :class:`~crowdllm.evaluate.baselines.LinearText` on the text embedding (+ structured
  attributes): the per-task answer histogram by ridge regression, its strength chosen on held-out
  training tasks.
- ``text+reference``: the same linear model given the LLM reference too (``y_ref`` and ``p_*``, from
  ``options['reference']`` or asked of ``options['llm']``: one call per task, shared with ``crowdllm``).
  What the CVAE (and the twins) add is what CrowdLLM scores beyond this row.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from crowdllm.evaluate.baselines import LinearText
from crowdllm.evaluate.methods._common import references
from crowdllm.evaluate.runner import ExperimentContext, register_method

_KINDS = ("continuous", "ordinal", "categorical", "topk")


def _embedder(ctx: ExperimentContext) -> str:
    return str(ctx.options.get("embedder", "auto"))


class TextReference(LinearText):
    """:class:`LinearText` under the runner name ``text+reference`` (constructed with a reference)."""

    name = "text+reference"


def _with_reference(ctx: ExperimentContext) -> LinearText:
    options: dict[str, Any] = dict(ctx.options)

    def reference(tasks: pd.DataFrame) -> pd.DataFrame:
        return references(tasks, ctx.label, options, dataset=ctx.dataset, seed=0)

    return TextReference(embedder=_embedder(ctx), reference=reference, random_state=ctx.seed)


register_method("text-ridge", lambda ctx: LinearText(embedder=_embedder(ctx), random_state=ctx.seed),
                label_kinds=_KINDS,
                description="per-task answer histogram from the text embedding by ridge regression")
register_method("text+reference", _with_reference, needs_llm=True, label_kinds=_KINDS,
                description="text-ridge given the LLM reference (y_ref, p_*) as extra inputs")

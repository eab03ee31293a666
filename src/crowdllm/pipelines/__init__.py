"""Crowdsourcing pipelines run by virtual workers (Wu et al. 2023, arXiv 2307.10168).

Building blocks: :class:`Worker` (role prompt + optional persona), :class:`Run` (the gate every LLM
call goes through: budget, trace, usage), microtask and crowd steps in :mod:`.steps`, composition in
:mod:`.compose`, a JSONL :class:`Trace`. The seven pipelines are one short module each; every one has
a single-LLM baseline, built-in examples and an automatic evaluation, and :func:`compare` puts a
pipeline next to its baseline.

    >>> from crowdllm.llm.fake import FakeLLM
    >>> from crowdllm.pipelines import run_pipeline
    >>> out = run_pipeline("find-fix-verify", "A text to shorten.", FakeLLM("NONE"))
    >>> out.text
    'A text to shorten.'
"""

from crowdllm.pipelines.budget import Budget, BudgetExceeded
from crowdllm.pipelines.compare import Comparison, compare, examples_for
from crowdllm.pipelines.evaluation import Evaluator
from crowdllm.pipelines.examples import load_examples, popquorn_examples
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.runner import get_pipeline, pipelines, run_pipeline
from crowdllm.pipelines.spec import Outcome, PipelineSpec, Settings
from crowdllm.pipelines.trace import Trace, read_trace, usage_of
from crowdllm.pipelines.worker import Worker, make_workers

__all__ = [
    "Budget", "BudgetExceeded", "Comparison", "Evaluator", "Outcome", "PipelineSpec", "Run", "Settings",
    "Trace", "Worker", "compare", "examples_for", "get_pipeline", "load_examples", "make_workers",
    "pipelines", "popquorn_examples", "read_trace", "run_pipeline", "usage_of",
]

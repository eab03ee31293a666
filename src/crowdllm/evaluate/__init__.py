"""Evaluate virtual crowds against real ones: metrics, noise ceiling, baselines, the experiment runner.

>>> from crowdllm.data.synthetic import make_synthetic_crowd
>>> from crowdllm.evaluate import run_experiment, summarize
>>> crowd = make_synthetic_crowd(n_tasks=30, n_workers=20, random_state=0).dataset
>>> results = run_experiment(crowd, methods=["random", "global"], seeds=[0], aggregators=["mean"], progress=False)
>>> list(results.columns)
['dataset', 'split', 'seed', 'method', 'aggregator', 'metric', 'value']

See docs/metrics.md for every definition.
"""

from crowdllm.evaluate.baselines import (
    GlobalDistribution,
    Method,
    PerTaskEmpirical,
    ProfileGroup,
    UniformRandom,
)
from crowdllm.evaluate.metrics import DEFAULT_AGGREGATORS, evaluate_predictions
from crowdllm.evaluate.noise import noise_ceiling, split_half
from crowdllm.evaluate.runner import (
    METHODS,
    RESULT_COLUMNS,
    ExperimentContext,
    register_method,
    run_experiment,
    summarize,
)
from crowdllm.evaluate.table import read_results, to_markdown, to_rich, write_results

__all__ = [
    "DEFAULT_AGGREGATORS",
    "METHODS",
    "RESULT_COLUMNS",
    "ExperimentContext",
    "GlobalDistribution",
    "Method",
    "PerTaskEmpirical",
    "ProfileGroup",
    "UniformRandom",
    "evaluate_predictions",
    "noise_ceiling",
    "read_results",
    "register_method",
    "run_experiment",
    "split_half",
    "summarize",
    "to_markdown",
    "to_rich",
    "write_results",
]

"""Your own study: fit a digital crowd once, then ask it, sample it, and mix in a few real people.

- :mod:`crowdllm.study.question` -- what was asked (question, answer words) for the reference prompt;
- :mod:`crowdllm.study.fit` -- references, the fit, validation numbers and the interval for the mean;
- :mod:`crowdllm.study.card` -- the model card next to a saved crowd;
- :mod:`crowdllm.study.sample` -- virtual people, sampling in chunks, mixing in real answers, summaries.

The command line over it is ``crowdllm crowd fit|info|sample|ask`` (:mod:`crowdllm.cli.crowd`).
"""

from crowdllm.study.card import read_card, render_card, write_card
from crowdllm.study.fit import fit_study, task_references, validate
from crowdllm.study.question import Question, parse_levels
from crowdllm.study.sample import mix_real, people, sample_to_file, summarize

__all__ = ["Question", "fit_study", "mix_real", "parse_levels", "people", "read_card", "render_card",
           "sample_to_file", "summarize", "task_references", "validate", "write_card"]

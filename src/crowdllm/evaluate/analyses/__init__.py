"""The paper's analyses beyond its tables, one module each, as library functions on data frames.

Each analysis takes a data set and a mapping ``{name: method factory}`` (a factory is a callable
``(train, random_state) -> fitted model`` whose model can ``sample`` answers for virtual people), and
returns a tidy long frame; :mod:`crowdllm.report.figures` draws it and ``crowdllm analyze`` writes both.
Every analysis also takes ``progress`` (a rich progress bar) and ``on_step`` (called with the rows so
far after each fitted method; the CLI saves them to ``<analysis>.partial.csv``, so an interrupted run
keeps its finished work).

- :mod:`.data_efficiency` — error vs virtual crowd size by share of training people (Figure 4)
- :mod:`.crowd_size` — resolution rate vs crowd size, diverse vs fixed profiles (Figure 5)
- :mod:`.cost` — virtual people needed to match the real crowd, and the money (appendix B.5)
- :mod:`.growth` — error as problems / people / ratings grow (appendix B.1-B.4)
- :mod:`.simulation` — synthetic crowds with known truth: noise x belief diversity (section 5.5)
- :mod:`.theory_checks` — Theorem 5 interval coverage and Theorem 2 risk terms
"""

from crowdllm.evaluate.analyses.cost import LLMCost, Prices, cost_table, people_needed
from crowdllm.evaluate.analyses.crowd_size import crowd_size
from crowdllm.evaluate.analyses.data_efficiency import data_efficiency
from crowdllm.evaluate.analyses.growth import growth_curves
from crowdllm.evaluate.analyses.simulation import make_simulated_crowd, simulation_study
from crowdllm.evaluate.analyses.theory_checks import theory_checks

__all__ = [
    "LLMCost",
    "Prices",
    "cost_table",
    "crowd_size",
    "data_efficiency",
    "growth_curves",
    "make_simulated_crowd",
    "people_needed",
    "simulation_study",
    "theory_checks",
]

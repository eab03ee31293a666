"""A reference computed for another label is refused with a message, never silently dropped (a 1-5 rating
reference handed to a yes/no crowd used to lose its answer shares and put every task on the same base)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.crowd import DigitalCrowd
from crowdllm.data import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError


def _yes_no_crowd() -> CrowdDataset:
    rng = np.random.default_rng(0)
    rows = [(f"t{t}", f"w{w}", int(rng.random() < (0.2 + 0.6 * (t % 2)))) for t in range(20) for w in range(6)]
    return CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]),
                        pd.DataFrame({"task": [f"t{t}" for t in range(20)],
                                      "text": [f"comment {t}" for t in range(20)]}),
                        pd.DataFrame({"worker": [f"w{w}" for w in range(6)], "gender": ["Man", "Woman"] * 3}),
                        LabelSpec("categorical", categories=("0", "1")), name="yes-no").validate()


def _fit(reference: pd.DataFrame) -> DigitalCrowd:
    return DigitalCrowd(epochs=1, embedder="hashing", random_state=0).fit(_yes_no_crowd(), reference=reference)


def test_a_rating_reference_is_refused_by_a_yes_no_crowd() -> None:
    tasks = [f"t{t}" for t in range(20)]
    rating = pd.DataFrame({"task": tasks, "y_ref": 3.0, **{f"p_{k}": 0.2 for k in range(1, 6)}})
    with pytest.raises(ConfigError, match=r"p_1, p_2, p_3, p_4, p_5\) are not this crowd's answers \(p_0, p_1\)"):
        _fit(rating)


def test_a_matching_reference_is_read_whole() -> None:
    tasks = [f"t{t}" for t in range(20)]
    p1 = np.where(np.arange(20) % 2 == 1, 0.8, 0.2)
    crowd = _fit(pd.DataFrame({"task": tasks, "y_ref": (p1 > 0.5).astype(float), "p_0": 1 - p1, "p_1": p1}))
    assert crowd.state_.p_columns == ["p_0", "p_1"]


def test_a_reference_naming_number_coded_categories_is_accepted() -> None:
    """y_ref that names the answer as a number (a CSV reads "1" back as 1.0) is not mistaken for a
    reference of another label."""
    tasks = [f"t{t}" for t in range(20)]
    crowd = _fit(pd.DataFrame({"task": tasks, "y_ref": [0.0, 1.0] * 10}))
    assert crowd.state_.has_reference and crowd.state_.p_columns == []


def test_a_number_coded_answer_is_read_by_its_name_not_as_a_position() -> None:
    """Categories coded 1, 2, 3: a reference naming "3" (read back from a CSV as 3.0) puts its weight on
    the answer "3", the third, not on position 3 (past the end) -- nor "1" on the second answer."""
    rng = np.random.default_rng(1)
    rows = [(f"t{t}", f"w{w}", str(rng.integers(1, 4))) for t in range(20) for w in range(6)]
    data = CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]),
                        pd.DataFrame({"task": [f"t{t}" for t in range(23)], "text": [f"comment {t}" for t in range(23)]}),
                        pd.DataFrame({"worker": [f"w{w}" for w in range(6)], "gender": ["Man", "Woman"] * 3}),
                        LabelSpec("categorical", categories=("1", "2", "3")), name="codes").validate()
    named = [1.0, 2.0, 3.0] * 7 + [1.0, 3.0]
    reference = pd.DataFrame({"task": [f"t{t}" for t in range(23)], "y_ref": named})
    crowd = DigitalCrowd(epochs=1, embedder="hashing", calibrate="none", task_memory=False, person_twins=False,
                         random_state=0).fit(data, reference=reference)
    new = data.tasks[data.tasks["task"].isin(["t20", "t21", "t22"])]
    out = crowd.expected_decisions(new, data.workers.head(1), reference=reference)
    favoured = out[["mu_1", "mu_2", "mu_3"]].to_numpy().argmax(axis=1)
    assert [("1", "2", "3")[i] for i in favoured] == ["3", "1", "3"]

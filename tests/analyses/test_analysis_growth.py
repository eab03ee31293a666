"""Growth curves: the limits are what they say, and more answers per problem help."""

from __future__ import annotations

import pytest

from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses.growth import growth_curves, limit, summarize


def test_each_factor_limits_the_training_data_as_named(crowd):
    ds = crowd.dataset
    assert ds.responses.pipe(lambda r: limit(ds, "problems", 7, 0).responses["task"].nunique()) == 7
    assert limit(ds, "people", 9, 0).responses["worker"].nunique() == 9
    per_person = limit(ds, "ratings_per_person", 3, 0).responses.groupby("worker").size()
    assert per_person.max() == 3 and per_person.index.nunique() == ds.responses["worker"].nunique()
    per_task = limit(ds, "people_per_problem", 2, 0).responses.groupby("task").size()
    assert per_task.max() == 2 and len(per_task) == ds.responses["task"].nunique()
    # nested: the 2-per-problem answers are among the 4-per-problem answers
    two = limit(ds, "people_per_problem", 2, 0).responses.index
    four = limit(ds, "people_per_problem", 4, 0).responses.index
    assert set(two) < set(four)
    with pytest.raises(ConfigError, match="growth factor"):
        limit(ds, "voters", 3, 0)


def test_more_answers_per_problem_lower_the_error(crowd, methods):
    res = growth_curves(crowd.dataset, {"task-mean": methods.factory(spread=0.5)},
                        factors=["people_per_problem", "problems"],
                        levels={"people_per_problem": [1, 3], "problems": [5, 1000]}, n_virtual=20, seeds=[0, 1])
    mae = res[res["metric"] == "mae"].groupby(["factor", "level"])["value"].mean()
    full = mae.loc["people_per_problem"].index.max()
    assert mae[("people_per_problem", 1)] > mae[("people_per_problem", full)]
    # 1000 problems is more than there are: it becomes the full count, measured once
    assert sorted(mae.loc["problems"].index) == [5, 80]
    assert mae[("problems", 5)] > mae[("problems", 80)]
    head = summarize(res)
    assert set(head["factor"]) == {"people_per_problem", "problems"}

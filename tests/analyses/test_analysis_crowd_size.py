"""Resolution rate: a crowd of different people resolves more tasks than one fixed profile repeated."""

from __future__ import annotations

from crowdllm.evaluate.analyses.crowd_size import crowd_size, summarize


def test_diverse_profiles_resolve_more_tasks_than_a_fixed_profile(crowd, methods):
    # the method has learnt that women rate one point higher; a crowd of one repeated profile is
    # therefore half a point off the population on every task, however many people it has
    res = crowd_size(crowd.dataset, {"task-mean": methods.factory(spread=0.8)}, sizes=[1, 2, 5, 10, 40],
                     tolerances=[0.3, 0.5], seeds=[0, 1])
    rate = res.groupby(["profiles", "tolerance", "n_virtual"])["resolution_rate"].mean()
    for tol in (0.3, 0.5):
        assert rate[("diverse", tol, 40)] > rate[("fixed", tol, 40)] + 0.1
        assert rate[("diverse", tol, 40)] > rate[("diverse", tol, 1)]
    # a looser tolerance resolves at least as many tasks
    assert (res[res["tolerance"] == 0.5]["resolution_rate"].to_numpy()
            >= res[res["tolerance"] == 0.3]["resolution_rate"].to_numpy()).all()
    assert res["resolution_rate"].between(0, 1).all()
    head = summarize(res)
    assert {"N=1", "N=40"} <= set(head.columns)


def test_a_method_that_ignores_profiles_is_the_same_either_way(crowd, methods):
    res = crowd_size(crowd.dataset, {"blind": methods.factory(spread=0.0, use_profile=False)}, sizes=[1, 10],
                     tolerances=[0.5], seeds=[0])
    by = res.set_index(["profiles", "n_virtual"])["resolution_rate"]
    assert by[("diverse", 10)] == by[("fixed", 10)]

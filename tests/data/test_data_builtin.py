"""The registered real data sets, checked against their raw files read independently (csv/json)
and against the figures published in the data README."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from crowdllm.data import REGISTRY, load_dataset


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def offensiveness(shared_data):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CROWDLLM_DATA_PATH", str(shared_data))
        return load_dataset("popquorn-offensiveness")


def test_offensiveness_matches_the_published_counts(offensiveness):
    ds = offensiveness
    assert (ds.n_responses, ds.n_tasks, ds.n_workers) == (13036, 1500, 262)
    assert ds.label.kind == "ordinal" and ds.label.scale == (1, 5)
    counts = ds.responses["label"].value_counts().to_dict()
    assert counts == {1.0: 7516, 2.0: 2190, 3.0: 1590, 4.0: 1039, 5.0: 701}
    per_task = ds.responses.groupby("task").size()
    assert per_task.min() == 5 and per_task.max() == 10


def test_offensiveness_rows_match_the_raw_file(offensiveness, shared_data):
    raw = _raw_rows(shared_data / "popquorn" / "offensiveness.csv")
    merged = offensiveness.merged().set_index(["task", "worker"])
    assert len(raw) == len(merged)
    for r in raw[::37]:
        row = merged.loc[(r["instance_id"], r["user_id"])]
        assert row["label"] == float(r["offensiveness"]) and row["text"] == r["text"]
        for col in ("gender", "race", "age", "occupation"):
            assert row[col] == r[col]
        if r["education"] == "Other":
            assert pd.isna(row["education"])
        else:
            assert row["education"] == r["education"]


def test_offensiveness_ordered_attributes_are_in_true_order(offensiveness):
    ds = offensiveness
    ages = ds.ordered_attributes["age"]
    assert set(ds.workers["age"]) == set(ages) and len(ages) == 10
    lower = [int(a.lstrip(">").split("-")[0]) for a in ages]
    assert lower == sorted(lower) and ages[0] == "18-24" and ages[-1] == ">65"
    rank = {"less than": 0, "high school": 1, "college": 2, "graduate": 3}
    edu = ds.ordered_attributes["education"]
    assert [next(v for k, v in rank.items() if e.lower().startswith(k)) for e in edu] == [0, 1, 2, 3]
    assert set(ds.workers["education"].dropna()) == set(edu)
    # 'Other' has no place on the order: those workers' education is missing, and the description says so
    n_other = ds.workers["education"].isna().sum()
    assert n_other > 0 and f"({n_other} workers)" in ds.description


def test_email_rewriting_skips_rows_without_a_worker(shared_data):
    raw = _raw_rows(shared_data / "popquorn" / "email_rewriting.csv")
    named = [r for r in raw if r["user_id"].strip()]
    ds = load_dataset("popquorn-email-rewriting")
    assert ds.dropped_rows == len(raw) - len(named) > 0
    assert f"{ds.dropped_rows} rows without a user_id" in ds.description
    assert ds.summary()["dropped_rows"] == ds.dropped_rows
    assert ds.n_responses == len(named) == 2346 - ds.dropped_rows
    assert ds.n_tasks == len({r["instance_id"] for r in named})
    assert ds.n_workers == len({float(r["user_id"]) for r in named})
    assert ds.label.kind == "text"
    by_pair = ds.merged().set_index(["task", "worker"])
    for r in named[::53]:
        row = by_pair.loc[(r["instance_id"], str(int(float(r["user_id"]))))]
        assert row["label"] == r["revised email"] and row["text"] == r["original email"]
    assert "age" not in ds.workers.columns  # empty in every row of this file


def test_zurich_top5_ballots_match_the_votes_and_the_raw_lab_responses(shared_data):
    folder = shared_data / "zurich-pb"
    ds = load_dataset("zurich-pb-top5")
    assert (ds.n_tasks, ds.n_workers, ds.n_responses) == (24, 180, 180 * 24)
    assert ds.label.kind == "topk" and ds.label.k == 5
    assert (ds.responses.groupby("worker")["label"].sum() == 5).all()
    ballots = json.loads((folder / "votes_kapp.json").read_text())
    expected = Counter(f"#{v}" for b in ballots for v in b["votes"])
    assert ds.responses.groupby("task")["label"].sum().to_dict() == {f"#{i}": expected[f"#{i}"]
                                                                      for i in range(1, 25)}
    # ballot i belongs to lab_meta row i: the raw lab answers (voteB, keyed by voter id) agree
    chosen = ds.responses.pivot(index="worker", columns="task", values="label")
    for rec in json.loads((folder / "responses.json").read_text()):
        assert [int(chosen.loc[rec["id"], f"#{i}"]) for i in range(1, 25)] == rec["Inputs"]["voteB"]


def test_zurich_profiles_and_project_texts(shared_data):
    ds = load_dataset("zurich-pb-top5")
    meta = _raw_rows(shared_data / "zurich-pb" / "lab_meta.csv")
    workers = ds.workers.set_index("worker")
    for r in meta:
        for order in ("1st", "2nd", "3rd"):
            assert workers.loc[r["ID"], f"score_{r[f'{order} Topic']}"] == int(r[f"{order} Score"])
        assert workers.loc[r["ID"], "How Connected"] == r["How Connected"]
    assert (workers[["score_Culture", "score_Nature", "score_Transport"]].sum(axis=1) == 100).all()
    assert set(ds.ordered_attributes) == {"How Connected", "District Importance", "Topic Importance",
                                          "Cost Importance", "Likelihood Importance"}
    assert ds.ordered_attributes["Cost Importance"][0] == "Not important at all"
    projects = {r["Id"]: r for r in _raw_rows(shared_data / "zurich-pb" / "zurich_lab.csv")}
    for _, t in ds.tasks.iterrows():
        p = projects[t["task"]]
        assert p["Name"] in t["text"] and f"{int(p['Cost']):,} CHF" in t["text"] and p["District"] in t["text"]
        assert (t["District"], t["Category"], t["Cost"]) == (p["District"], p["Category"], int(p["Cost"]))


@pytest.mark.parametrize("name", ["popquorn-offensiveness", "popquorn-email-rewriting", "zurich-pb-top5"])
def test_listed_counts_are_the_measured_ones(name, shared_data):
    ds = load_dataset(name)
    assert dict(REGISTRY[name].counts) == {"tasks": ds.n_tasks, "workers": ds.n_workers,
                                           "responses": ds.n_responses}

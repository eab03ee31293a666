"""The report page: what it shows, and that it needs nothing from the network."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from crowdllm.errors import ConfigError
from crowdllm.report.html import build_report, summarize_results


def test_page_holds_every_table_and_figure_inline(results_dir, tmp_path):
    out = build_report(results_dir, tmp_path / "page.html")
    page = out.read_text(encoding="utf-8")
    # three analysis figures + the methods' error chart + the real-vs-virtual distributions, all inline PNG
    imgs = re.findall(r"<img src='([^']*)'", page)
    assert len(imgs) == 5 and all(src.startswith("data:image/png;base64,") for src in imgs)
    # the headline: a compact table (best in bold) first, the long table folded in an appendix after it
    assert page.index("split: worker") < page.index("Appendix: every split") < page.index("0.410 ± 0.010")
    assert "<b>0.41</b>" in page
    # offline: no external resources of any kind
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "http://" not in page and "https://" not in page
    # the results summary: mean ± std over three seeds
    assert "0.410 ± 0.010" in page and "over 3 seed(s)" in page
    # usage and settings
    assert "tokens.prompt" in page and "250000" in page
    assert "crowdllm reproduce offensiveness --seeds 3" in page
    assert "crowdllm analyze data-efficiency --dataset synthetic" in page
    for title in ("Data efficiency", "Crowd size and resolution rate", "Cost saving: virtual people needed",
                  "Real vs virtual answers"):
        assert title in page


def test_summary_of_long_results_is_mean_and_std_over_seeds():
    long = pd.DataFrame({"dataset": "d", "split": "task", "seed": [0, 1, 0, 1], "method": ["a", "a", "b", "b"],
                         "aggregator": "mean", "metric": "mae", "value": [1.0, 3.0, 2.0, 2.0]})
    wide = summarize_results(long).set_index("method")
    assert wide.loc["a", "mae"] == "2.000 ± 1.414"
    assert wide.loc["b", "mae"] == "2.000 ± 0.000"
    # one-valued keys leave the rows and are named once
    assert "dataset" not in wide.columns and wide.attrs["constant"] == {"dataset": "d", "split": "task",
                                                                       "aggregator": "mean"}


def test_text_from_files_is_escaped(tmp_path):
    pd.DataFrame({"method": ["<script>alert(1)</script>"], "metric": ["mae"], "value": [1.0], "seed": [0]}).to_csv(
        tmp_path / "results.csv", index=False)
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_missing_or_empty_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_report(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no results"):
        build_report(tmp_path)


def test_reproduce_outputs_are_summarised(tmp_path):
    import json

    import numpy as np

    n = 40
    gen = np.random.default_rng(0)
    pd.DataFrame({"task": [f"t{i}" for i in range(n)], "y_ref": np.linspace(1, 3, n), "p_1": 0.5,
                  "parse_failures": [1] + [0] * (n - 1)}).to_csv(tmp_path / "references.csv", index=False)
    pd.DataFrame({"task": [f"t{i}" for i in range(n)], "split": ["worker"] * 30 + ["task"] * 10,
                  "covered": [True] * 27 + [False] * 3 + [True] * 5 + [False] * 5,
                  "half_width": gen.uniform(1, 2, n)}).to_csv(tmp_path / "theory.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({"usage": {"calls": 1500}, "seeds": [0, 1]}))
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert "LLM references" in page and "<td class=''>40</td>" in page  # 40 tasks
    assert "Theorem 5 intervals per task" in page
    # coverage per split: 27/30 = 0.9 on worker, 5/10 = 0.5 on task
    assert "<td class=''>0.9</td>" in page and "<td class=''>0.5</td>" in page
    assert "usage.calls" in page and "1500" in page


def test_compact_tables_put_methods_in_rows_and_floors_last():
    from crowdllm.report.html import compact_html, compact_tables

    rows = [("d", split, 0, method, agg, metric, value)
            for split in ("worker", "task")
            for method, base in (("noise-ceiling", 0.2), ("global", 0.9), ("crowdllm", 0.6))
            for agg, metric, value in (("mean", "mae", base), ("-", "avg_wd", base + 0.1),
                                       ("mean", "cs_centered", 1 - base), ("median", "mae", 7.0))]
    long = pd.DataFrame(rows, columns=["dataset", "split", "seed", "method", "aggregator", "metric", "value"])
    tables = compact_tables(long)
    assert list(tables) == ["worker", "task"]
    table = tables["task"]
    assert list(table.columns) == ["MAE", "Avg WD", "CS"] and list(table.index) == ["global", "crowdllm",
                                                                                  "noise-ceiling"]
    assert table.loc["crowdllm", "MAE"] == pytest.approx(0.6)  # the mean aggregator, not the median's 7.0
    page = compact_html(table, "t")
    # best model value in bold per column (lower MAE, higher CS); the floor's better numbers are not bold
    assert "<b>0.6</b>" in page and "<b>0.4</b>" in page and "<b>0.2</b>" not in page

"""Tables of results measured under both protocols: one table per protocol, titled and explained."""

from __future__ import annotations

import pandas as pd

from crowdllm.evaluate.table import read_results, to_markdown, write_results


def results_in_both_protocols() -> pd.DataFrame:
    rows = []
    for protocol, shift in (("matched", 0.1), ("population", 0.0)):
        for seed in (0, 1):
            for method, base in (("global", 0.6), ("crowdllm", 0.45), ("noise-ceiling", 0.25),
                                 ("sampling-oracle", 0.33)):
                value = base + (shift if method not in ("noise-ceiling", "sampling-oracle") else 0) + 0.01 * seed
                rows.append(("d", "task", seed, method, "mean", "mae", value, protocol))
    return pd.DataFrame(rows, columns=["dataset", "split", "seed", "method", "aggregator", "metric", "value",
                                       "protocol"])


def test_one_table_per_protocol_with_the_floor_rows_last(tmp_path) -> None:
    md = to_markdown(results_in_both_protocols())
    assert "split by task, matched protocol (2 seeds" in md and "split by task, population protocol" in md
    matched = md.split("### ")[1]
    lines = [line for line in matched.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0] for line in lines] == ["| global", "| crowdllm", "| *noise-ceiling*",
                                                        "| *sampling-oracle*"]
    assert "| crowdllm | **0.56 ± 0.01** |" in matched  # 0.45 + 0.1 matched shift, seeds 0 and 1
    assert "population protocol: each method's per-task answer distribution" in md
    csv_path, _ = write_results(results_in_both_protocols(), tmp_path)
    back = read_results(csv_path)
    assert set(back["protocol"]) == {"matched", "population"}


def test_results_without_a_protocol_keep_the_old_titles() -> None:
    plain = results_in_both_protocols().query("protocol == 'matched'").drop(columns="protocol")
    md = to_markdown(plain)
    assert "split by task (2 seeds" in md and "protocol" not in md.split("\n\n")[0]

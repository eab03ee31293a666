"""Tables and the results file."""

from __future__ import annotations

import pandas as pd

from crowdllm.evaluate.runner import RESULT_COLUMNS, summarize
from crowdllm.evaluate.table import read_results, table_columns, to_markdown, to_rich, write_results


def results() -> pd.DataFrame:
    rows = []
    for method, base in (("random", 1.5), ("global", 1.0), ("noise-ceiling", 0.5)):
        for seed, jitter in ((0, 0.0), (1, 0.2)):
            for agg in ("mean", "mv"):
                rows += [("toy", "worker", seed, method, agg, "mae", base + jitter),
                         ("toy", "worker", seed, method, agg, "rmse", base + 0.5 + jitter),
                         ("toy", "worker", seed, method, agg, "cs_raw", 0.9),
                         ("toy", "worker", seed, method, agg, "cs_centered", 0.1 / base)]
            rows += [("toy", "worker", seed, method, "-", "cs_dist", 0.3 / base),
                     ("toy", "worker", seed, method, "-", "avg_wd", base),
                     ("toy", "worker", seed, method, "-", "coverage", 1.0)]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def test_columns_follow_the_paper() -> None:
    cols = table_columns(summarize(results()))
    assert [c.header for c in cols] == ["MAE Mean", "MAE MV", "RMSE Mean", "RMSE MV", "CS dist", "CS raw",
                                        "CS centered", "Avg WD"]  # no coverage column: all 1.0


def test_markdown_table_with_best_in_bold_and_ceiling_last() -> None:
    md = to_markdown(results())
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| Method | MAE Mean | MAE MV |")
    assert lines[2].startswith("| random | 1.60 ± 0.14 |")  # mean of 1.5 and 1.7, sample std 0.14
    assert lines[3].startswith("| global | **1.10 ± 0.14** |")  # lower MAE is better
    assert lines[4].startswith("| *noise-ceiling* | 0.60 ± 0.14 |")  # never bold
    assert "toy — split by worker (2 seeds" in md


def test_rich_renders(capsys) -> None:
    from rich.console import Console

    Console(width=200).print(to_rich(results()))
    out = capsys.readouterr().out
    assert "noise-ceiling" in out and "1.10 ± 0.14" in out


def test_results_files_round_trip(tmp_path) -> None:
    res = results()
    csv_path, md_path = write_results(res, tmp_path / "out")
    back = read_results(csv_path)
    assert list(back.columns) == list(RESULT_COLUMNS)
    pd.testing.assert_frame_equal(back, res, check_dtype=False)
    assert md_path.read_text().startswith("### toy")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.csv", "results.md"]  # no temp files

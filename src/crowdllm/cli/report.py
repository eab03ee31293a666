"""``crowdllm report RESULTS_DIR``: one self-contained HTML page from a results folder."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        results_dir: Path = typer.Argument(..., help="Folder of results (CSV, PNG, predictions.csv, usage.json, "
                                                      "settings.json), searched with its sub-folders."),
        out: Path = typer.Option(None, "--out", "-o", help="Where to write the page (default RESULTS_DIR/report.html)."),
        title: str = typer.Option(None, "--title", help="Page title."),
        tasks: int = typer.Option(3, "--tasks", help="Tasks shown in the real-vs-virtual distribution plots."),
        seed: int = typer.Option(0, "--seed", help="Seed for choosing those tasks."),
    ) -> None:
        """Build one HTML page (inline figures and tables, no network needed) from RESULTS_DIR."""
        from crowdllm.report.html import build_report

        path = build_report(results_dir, out, title=title, n_tasks=tasks, seed=seed)
        typer.echo(f"wrote {path}")

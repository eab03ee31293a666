"""A trace as a readable, numbered step list (rich)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from crowdllm.pipelines.trace import usage_of


def _short(value: Any, width: int) -> str:
    s = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    s = " ".join(s.split())
    return s if len(s) <= width else s[: width - 1] + "\u2026"


def _cost(rec: dict[str, Any]) -> str:
    tokens = int(rec.get("prompt_tokens", 0)) + int(rec.get("completion_tokens", 0))
    return f"{rec.get('calls', 0)} calls \u00b7 {tokens} tok \u00b7 {float(rec.get('seconds', 0)):.1f} s"


def render_trace(records: list[dict[str, Any]], *, full: bool = False, width: int = 100) -> RenderableType:
    """The whole trace: header, numbered steps with their cost, every call, vote, decision and note,
    then the result. ``full`` shows each call's prompt too."""
    return Group(*_lines(records, full=full, width=width))


def _lines(records: list[dict[str, Any]], *, full: bool, width: int) -> Iterator[RenderableType]:
    ends = _step_costs(records)
    numbers: list[int] = [0]
    for i, rec in enumerate(records):
        kind = rec.get("kind")
        depth = len(numbers) - 1
        pad = "   " * depth
        if kind == "start":
            yield _header(rec, width)
        elif kind == "step":
            while len(numbers) - 1 > int(rec.get("depth", 0)):
                numbers.pop()
            numbers[-1] += 1
            label = ".".join(str(n) for n in numbers)
            line = Text("   " * (len(numbers) - 1))
            line.append(f"{label} {rec.get('name')}", style="bold cyan")
            if i in ends:
                line.append(f"   {_cost(ends[i])}", style="dim")
            yield line
            numbers.append(0)
        elif kind == "step_end":
            if len(numbers) > 1:
                numbers.pop()
        elif kind == "call":
            line = Text(pad + "  ")
            line.append(f"{rec.get('worker')}", style="green")
            line.append(f" \u25b8 {rec.get('task')}: ", style="dim")
            if rec.get("error"):
                line.append(f"[error] {_short(rec['error'], width)}", style="red")
            elif "probs" in rec:
                probs = ", ".join(f"{c} {p:.2f}" for c, p in zip(rec.get("choices", []), rec["probs"],
                                                                  strict=False))
                line.append(probs)
            else:
                line.append(_short(rec.get("answer", ""), width))
            if rec.get("cached"):
                line.append("  (cached)", style="dim")
            yield line
            if full:
                user = next((m["content"] for m in reversed(rec.get("messages", [])) if m["role"] == "user"), "")
                system = next((m["content"] for m in rec.get("messages", []) if m["role"] == "system"), "")
                yield Text(f"{pad}      system: {_short(system, width * 3)}", style="dim")
                yield Text(f"{pad}      prompt: {_short(user, width * 6)}", style="dim")
        elif kind == "vote":
            line = Text(pad + "  ")
            line.append("vote ", style="magenta")
            if "tally" in rec:
                names = rec.get("labels") or {}
                line.append(", ".join(f"{_name(k, names)}: {v}" for k, v in (rec.get("tally") or {}).items()
                                      if not isinstance(v, list)))
                winner = rec.get("winner")
                shown = _name(str(winner), names) if winner is not None else None
                line.append(f"  \u2192 {_short(shown, width // 2)}" if shown is not None else "  \u2192 no winner",
                            style="bold")
                if rec.get("tie"):
                    line.append(" (tie)", style="yellow")
                if rec.get("counterbalanced"):
                    line.append(f"  [both orders; {rec.get('followed_position', 0)} followed position]", style="dim")
                elif rec.get("orders"):
                    line.append("  [order counterbalanced]", style="dim")
            elif "mean" in rec:
                line.append(f"ratings {_short(rec.get('votes'), width // 2)} \u2192 mean {rec.get('mean')}")
            else:
                line.append(f"kept {_short(rec.get('kept'), width)}")
            yield line
        elif kind == "decision":
            yield Text(f"{pad}  decision {rec.get('what')}: {_short(rec.get('value'), width)}", style="blue")
        elif kind == "keep":
            yield Text(f"{pad}  \u2713 best so far ({rec.get('why')})", style="dim green")
        elif kind == "note":
            yield Text(f"{pad}  ! {rec.get('message')}", style="yellow")
        elif kind == "error":
            yield Text(f"{pad}  \u2717 {rec.get('error')}", style="bold red")
        elif kind == "result":
            yield _result(rec, records)
    if not any(r.get("kind") == "result" for r in records):
        u = usage_of(records)
        yield Text(f"(no result record: the run did not finish; {u['calls']} calls were traced)", style="red")


def _name(key: str, labels: dict[str, str]) -> str:
    """An option key with its text, e.g. '0 «cat lost. grey…»' (votes keep option indices)."""
    return f"{key} \u00ab{labels[key]}\u00bb" if key in labels else key


def _step_costs(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Index of each ``step`` record -> its ``step_end`` record."""
    out, stack = {}, []
    for i, rec in enumerate(records):
        if rec.get("kind") == "step":
            stack.append(i)
        elif rec.get("kind") == "step_end" and stack:
            out[stack.pop()] = rec
    return out


def _header(rec: dict[str, Any], width: int) -> RenderableType:
    be = rec.get("backend") or {}
    t = Text()
    t.append(f"{rec.get('title', rec.get('pipeline'))}", style="bold")
    t.append(f" \u00b7 {rec.get('method')} \u00b7 {be.get('backend', '?')} ({be.get('model', '?')}) \u00b7 "
             f"seed {rec.get('seed')}\n")
    ex = dict(rec.get("example") or {})
    t.append(f"input {ex.pop('id', '')}: ", style="dim")
    main = next((k for k in ("text", "topic", "task", "sentence", "job") if k in ex), None)
    t.append(_short(ex.get(main, ex), width * 2) if main else _short(ex, width * 2))
    settings = rec.get("settings") or {}
    if settings:
        t.append("\nsettings: " + " ".join(f"{k}={v}" for k, v in settings.items()), style="dim")
    budget = rec.get("budget") or {}
    limits = [f"{budget[k]} {k[4:]}" for k in ("max_calls", "max_tokens") if budget.get(k) is not None]
    if limits:
        t.append("\nbudget: at most " + ", ".join(limits), style="dim")
    return t


def _result(rec: dict[str, Any], records: list[dict[str, Any]]) -> RenderableType:
    u = rec.get("usage") or usage_of(records)
    status = rec.get("status") or ("complete" if rec.get("complete") else "stopped early (best result so far)")
    title = (f"result \u00b7 {status} \u00b7 {u.get('calls', 0)} calls \u00b7 "
             f"{int(u.get('prompt_tokens', 0)) + int(u.get('completion_tokens', 0))} tokens \u00b7 "
             f"{float(u.get('seconds', 0)):.1f} s")
    body = Text(str(rec.get("text") or "(empty)"))
    notes = rec.get("notes") or []
    if notes:
        body.append(f"\n\n{len(notes)} note(s): " + "; ".join(notes[:6]) + (" ..." if len(notes) > 6 else ""),
                    style="yellow")
    return Panel(body, title=title, title_align="left", border_style="green" if rec.get("complete") else "yellow")


def print_trace(records: list[dict[str, Any]], *, full: bool = False, console: Console | None = None) -> None:
    console = console or Console()
    console.print(render_trace(records, full=full, width=max(60, min(console.width - 10, 140))))

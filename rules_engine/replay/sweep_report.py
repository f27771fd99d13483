"""A sweep's result table as CSV, JSON, Markdown and text (sweep.csv, sweep.json, sweep.md).

Rows are sorted best first by the ranking metric (ties by combination number), so the
files are byte-identical for the same inputs whichever executor ran the replays. Columns:
`rank`, `combination` (grid order), one per parameter, then the replay report's totals
(see docs/rule-tests-and-replay.md, "Sweeps"). The CSV and JSON hold `return`,
`max_drawdown_pct` and `exposure` as fractions, as report.json does; the text and Markdown
tables show them as percents, as the replay's text report does.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from rules_engine.replay.sweep import METRICS, SweepTable

SCHEMA = "replay-sweep-report/1"
_TEXT_COLUMNS = ("fires", "placed", "filled", "trades", "fees", "pnl", "return", "max_drawdown_pct", "errors")
_PERCENTS = {"return": "{:+.2f}%", "max_drawdown_pct": "{:.2f}%", "exposure": "{:.1f}%"}
"""Fractions shown to people as percents (the text report's precision)."""


def document(table: SweepTable, head: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA, **head, "rank_by": table.rank_by,
        "better": "higher" if METRICS[table.rank_by] else "lower", "combinations": len(table.rows),
        "parameters": list(table.parameters), "columns": table.columns,
        "best": table.ranked()[0] if table.best is not None else None, "rows": table.ranked(),
    }


def write_json(table: SweepTable, out: TextIO, head: dict[str, Any]) -> None:
    out.write(json.dumps(document(table, head), indent=2) + "\n")


def write_csv(table: SweepTable, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.ranked():
        writer.writerow(["" if row[c] is None else row[c] for c in table.columns])


def write_markdown(table: SweepTable, out: TextIO, head: dict[str, Any]) -> None:
    out.write("# Sweep report\n\n")
    out.write(f"- rules: {', '.join(head['rules'])}\n- data: {', '.join(d['path'] for d in head['data'])}\n")
    out.write(f"- sweep: {head['sweep']}, {len(table.rows)} combinations\n")
    out.write(f"- {_best_line(table)}\n\n")
    out.write("| " + " | ".join(table.columns) + " |\n|" + "|".join("---" for _ in table.columns) + "|\n")
    for row in table.ranked():
        out.write("| " + " | ".join(_cell(row[c], c) for c in table.columns) + " |\n")


def write_text(table: SweepTable, out: TextIO, files: list[str]) -> None:
    columns = ["rank", "combination", *table.parameters, *_TEXT_COLUMNS]
    cells = [columns] + [[_cell(row[c], c) for c in columns] for row in table.ranked()]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n")
    out.write("\n" + _best_line(table) + "\n")
    if files:
        out.write("Report written: " + ", ".join(files) + "\n")


def write_files(table: SweepTable, folder: Path, head: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "sweep.csv", folder / "sweep.json", folder / "sweep.md"]
    with open(paths[0], "w", encoding="utf-8", newline="") as handle:
        write_csv(table, handle)
    with open(paths[1], "w", encoding="utf-8") as handle:
        write_json(table, handle, head)
    with open(paths[2], "w", encoding="utf-8") as handle:
        write_markdown(table, handle, head)
    return paths


def _best_line(table: SweepTable) -> str:
    best = table.best
    if best is None:
        return f"Best by {table.rank_by}: none (no combination has a {table.rank_by})"
    values = ", ".join(f"{name}={best[name]}" for name in table.parameters)
    better = "higher" if METRICS[table.rank_by] else "lower"
    return (f"Best by {table.rank_by} ({better} is better): combination {best['combination']} ({values}): "
            f"{table.rank_by} {_cell(best[table.rank_by], table.rank_by)}")


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    shown = _PERCENTS.get(column)
    return shown.format(float(value) * 100) if shown is not None and isinstance(value, (int, float)) else str(value)

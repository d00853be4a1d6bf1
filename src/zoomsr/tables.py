"""Result tables: terminal text, Markdown, CSV and JSON from one list of rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from zoomsr.atomic import write_text
from zoomsr.errors import ZoomsrError


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def text_table(rows: list[dict], columns: list[str]) -> str:
    cells = [columns] + [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def csv_table(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


REPORT_FORMATS = (".md", ".csv", ".json")


def report_paths(out: str | Path) -> list[Path]:
    """``results.md`` -> that file; ``results`` (no known suffix) -> results.md/.csv/.json."""
    out = Path(out)
    if out.suffix.lower() in REPORT_FORMATS:
        return [out]
    if out.suffix:
        raise ZoomsrError(
            f"cannot write a report as '{out.name}': use .md, .csv or .json, or no suffix for all three"
        )
    return [out.with_suffix(s) for s in REPORT_FORMATS]


def write_report(
    out: str | Path, title: str, note: str, tables: dict[str, tuple[list[dict], list[str]]]
) -> list[Path]:
    """Write named tables (name -> (rows, columns)) as Markdown, CSV or JSON; returns the paths.

    CSV holds the first table only (the summary); JSON and Markdown hold all of them.
    """
    written = []
    for path in report_paths(out):
        suffix = path.suffix.lower()
        if suffix == ".md":
            parts = [f"# {title}", "", note, ""]
            for name, (rows, cols) in tables.items():
                parts += [f"## {name}", "", markdown_table(rows, cols), ""]
            text = "\n".join(parts)
        elif suffix == ".csv":
            rows, cols = next(iter(tables.values()))
            text = csv_table(rows, cols)
        else:
            text = json.dumps(
                {"title": title, "convention": note, **{n: r for n, (r, _) in tables.items()}},
                indent=1,
            )
        write_text(path, text)
        written.append(path)
    return written

"""``zoomsr models``: list the registered models."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "models", help="list the available models", description="List the registered models."
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.models.registry import list_models
    from zoomsr.tables import text_table

    rows = [
        {
            "name": s.name,
            "task": s.task,
            "scales": ",".join(map(str, s.scales)),
            "summary": s.summary,
        }
        for s in list_models()
    ]
    print(text_table(rows, ["name", "task", "scales", "summary"]))
    return 0

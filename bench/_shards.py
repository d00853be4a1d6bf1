"""Shared by the bench scripts: per-image rows cached as JSON, computed by shards of processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from zoomsr.atomic import write_text


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)``."""
    shard, shards = (int(v) for v in spec.split("/"))
    return shard, shards


def sharded_rows(
    names: list[str], cache: Path, shard: str, compute: Callable[[int], dict]
) -> list[dict] | None:
    """Rows of ``names`` in order: this shard's missing ones computed (``compute(index)``) and
    cached in ``cache/<name>.json``; None, after saying how far it got, while some are missing."""
    index_of, count = parse_shard(shard)
    cache.mkdir(parents=True, exist_ok=True)
    paths = [cache / f"{name}.json" for name in names]
    for index, path in enumerate(paths):
        if index % count == index_of and not path.is_file():
            write_text(path, json.dumps(compute(index)))  # last: it marks the image done
    done = [path for path in paths if path.is_file()]
    if len(done) < len(names):
        print(f"{len(done)} of {len(names)} images done (cache {cache}); rerun for the table")
        return None
    return [json.loads(path.read_text()) for path in done]

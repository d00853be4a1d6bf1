"""Batch jobs that survive a kill and split over processes: a manifest of finished outputs.

Every finished output gets one JSON line in a manifest in the output folder
(``OUT/.zoomsr-manifest.jsonl``; ``OUT/.zoomsr-manifest.shard-I-of-N.jsonl`` for a shard, so that
processes never write the same file): the output's path and sha256, each input's path and
sha256, and the model identity (name, scale, weights hash, the options that change pixels).
A rerun reads every manifest in the folder and skips a job when some entry has the same input
hashes, the same model identity and the output file on disk still has the recorded hash;
everything else is redone.

Crash safety, in order: the output is computed into a temporary file next to it
(:func:`zoomsr.atomic.atomic_write`), hashed, its manifest line appended and fsync'ed, and only
then renamed into place. A kill at any point leaves either no output, the previous output (its
hash disagrees with the entry) or the finished one with its entry: never a truncated image, and
never an output without its entry. A torn last manifest line (SIGKILL mid-write) is ignored.
Temporary files a killed run left behind are removed when a batch over the same outputs starts.
SIGTERM is turned into KeyboardInterrupt while a batch runs, so it cleans up as SIGINT does.

``--shard I/N`` takes the jobs whose index in the list sorted by output path is I modulo N;
under ``torchrun`` the default is ``RANK/WORLD_SIZE``. Shards of one folder run concurrently
(each process locks its own manifest file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from zoomsr.atomic import atomic_write
from zoomsr.errors import ImageWriteError, ZoomsrError

try:  # POSIX; elsewhere shards of one folder are simply not locked against each other
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST_STEM = ".zoomsr-manifest"

Progress = Callable[[Iterable, str], Iterable]


@dataclass(frozen=True)
class Job:
    """One output and the files it is computed from (the first names the job)."""

    inputs: tuple[Path, ...]
    output: Path


@dataclass
class BatchReport:
    total: int  # jobs in the whole batch
    selected: int  # jobs in this shard
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Job, str]] = field(default_factory=list)
    shard: tuple[int, int] | None = None
    manifest: Path | None = None

    def summary(self, what: str = "batch") -> str:
        line = f"{what}: {self.done} done, {self.skipped} skipped, {len(self.failed)} failed"
        if self.shard is not None:
            line += f" (shard {self.shard[0]}/{self.shard[1]}: {self.selected} of {self.total})"
        return line


# ------------------------------------------------------------------------------------ sharding


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """'I/N' -> (I, N); None -> torchrun's (RANK, WORLD_SIZE) when set, else None (no sharding)."""
    env = os.environ if env is None else env
    if text is None:
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return None
        text, what = f"{env['RANK']}/{env['WORLD_SIZE']}", "torchrun's RANK/WORLD_SIZE"
    else:
        what = "--shard"
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m[1]) < int(m[2]):
        raise ZoomsrError(f"{what} must be I/N with 0 <= I < N (e.g. 0/4), got '{text}'")
    return int(m[1]), int(m[2])


def select_shard(jobs: Sequence[Job], shard: tuple[int, int] | None) -> list[Job]:
    """The jobs of shard (I, N): every N-th of the list sorted by output path, from the I-th."""
    ordered = sorted(jobs, key=lambda j: j.output.as_posix())
    if shard is None:
        return ordered
    i, n = shard
    return ordered[i::n]


def rank_device(name: str, env: Mapping[str, str] | None = None) -> str:
    """'auto' under torchrun on a CUDA machine -> this rank's GPU (LOCAL_RANK), else ``name``."""
    env = os.environ if env is None else env
    if name == "auto" and "LOCAL_RANK" in env and torch.cuda.is_available():
        return f"cuda:{int(env['LOCAL_RANK']) % torch.cuda.device_count()}"
    return name


# ------------------------------------------------------------------------------------ identity


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(model: nn.Module) -> str:
    """Hash of the model's state (names, dtypes, shapes, values): the same for the same weights
    whether they came from a file, a registry default or a seeded initialisation."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}:{t.dtype}:{tuple(value.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _plain(value):
    """A JSON round trip, so that identities compare equal to what the manifest gives back."""
    return json.loads(json.dumps(value, sort_keys=True))


def model_identity(model: nn.Module, **options) -> dict:
    """What decides an output's pixels besides its inputs: the model and the run's options
    (all JSON values; e.g. tiling, self-ensemble, precision, zoom ratio)."""
    identity = {
        "name": getattr(model, "model_name", type(model).__name__),
        "scale": getattr(model, "scale", None),
        "weights_sha256": weights_sha256(model),
        "options": options,
    }
    with contextlib.suppress(TypeError, ValueError):  # a config JSON cannot hold adds nothing
        identity["config"] = _plain(getattr(model, "config", None))
    return _plain(identity)


# ------------------------------------------------------------------------------------ manifest


def manifest_path(folder: Path, shard: tuple[int, int] | None) -> Path:
    if shard is None:
        return folder / f"{MANIFEST_STEM}.jsonl"
    return folder / f"{MANIFEST_STEM}.shard-{shard[0]}-of-{shard[1]}.jsonl"


def read_manifests(folder: Path) -> dict[str, list[dict]]:
    """Every entry of every manifest in ``folder``, by output path (relative to the folder).
    Lines that do not parse (a line torn by a kill) are ignored."""
    entries: dict[str, list[dict]] = {}
    for path in sorted(folder.glob(f"{MANIFEST_STEM}*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                entries.setdefault(entry["output"], []).append(entry)
            except (ValueError, TypeError, KeyError):
                continue
    return entries


class ManifestWriter:
    """Appends one fsync'ed JSON line per finished output; holds an exclusive lock on its file,
    so two runs of the same shard cannot interleave (or delete each other's temporary files)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ZoomsrError(
                f"another zoomsr run is writing '{path}' (same output folder and shard); "
                "wait for it to finish or give each process its own --shard"
            ) from None
        size = os.fstat(self.fd).st_size
        if size and os.pread(self.fd, 1, size - 1) != b"\n":
            os.write(self.fd, b"\n")  # end a torn last line, so the next entry starts clean

    def append(self, entry: dict) -> None:
        os.write(self.fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)  # also releases the lock


# --------------------------------------------------------------------------------- temp files

# zoomsr.atomic names a temporary ".<stem>.tmp<8 hex><suffix>"; a writer that is itself atomic
# (write_image into that temporary) adds a second level: "..<stem>.tmp<hex>.tmp<hex><suffix>".
_TEMP = re.compile(r"\.{1,2}(.+?)((?:\.tmp[0-9a-f]{8}){1,2})")


def clean_stale_temps(outputs: Iterable[Path]) -> list[Path]:
    """Remove the temporary files a killed run left next to these outputs; returns them."""
    wanted: dict[Path, set[tuple[str, str]]] = {}
    for out in outputs:
        wanted.setdefault(out.parent, set()).add((out.stem, out.suffix))
    removed = []
    for folder, names in wanted.items():
        if not folder.is_dir():
            continue
        suffixes = {suffix for _, suffix in names}
        for path in folder.iterdir():
            if not path.name.startswith("."):
                continue
            for suffix in suffixes:
                core = path.name[: len(path.name) - len(suffix)] if suffix else path.name
                m = path.name.endswith(suffix) and _TEMP.fullmatch(core)
                if m and (m[1], suffix) in names and path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
                    break
    return removed


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so the write in progress removes its temporary file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# ------------------------------------------------------------------------------------ the run


def _check_outputs(jobs: Sequence[Job], overwrite: bool) -> list[Job]:
    """Drop repeated jobs; refuse two inputs writing one output, and (unless ``overwrite``)
    an output that is an input."""
    by_output: dict[Path, Job] = {}
    for job in jobs:
        key = job.output.resolve()
        other = by_output.setdefault(key, job)
        if [p.resolve() for p in other.inputs] != [p.resolve() for p in job.inputs]:
            raise ZoomsrError(
                f"'{other.inputs[0]}' and '{job.inputs[0]}' would both write '{job.output}'; "
                "rename one or run them separately"
            )
    if not overwrite:
        inputs = {p.resolve() for job in jobs for p in job.inputs}
        for key, job in by_output.items():
            if key in inputs:
                raise ImageWriteError(
                    f"refusing to overwrite input '{job.output}' (pass --overwrite)"
                )
    return list(by_output.values())


def run_batch(
    jobs: Sequence[Job],
    process: Callable[[Job, Path], object],
    identity: Mapping,
    folder: str | os.PathLike,
    *,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: Progress = lambda it, _desc: it,
    desc: str = "batch",
    on_result: Callable[[Job, str, str | None], object] | None = None,
) -> BatchReport:
    """Run ``process(job, tmp)`` (which writes the job's output to ``tmp``) for each job of this
    shard that the manifests in ``folder`` do not already record as finished.

    A job that raises :class:`ZoomsrError` (a corrupt image, say) is counted as failed and the
    batch goes on; anything else stops it. ``on_result(job, status, message)`` is called with
    status "done", "skipped" or "failed" after each job.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ZoomsrError(f"'{folder}' is a file; a batch needs an output folder")
    unique = _check_outputs(jobs, overwrite)
    mine = select_shard(unique, shard)
    identity = _plain(dict(identity))
    report = BatchReport(total=len(unique), selected=len(mine), shard=shard)
    writer = ManifestWriter(manifest_path(folder, shard))
    report.manifest = writer.path
    try:
        clean_stale_temps(job.output for job in mine)
        finished = read_manifests(folder)
        with _sigterm_as_interrupt():
            for job in progress(mine, desc):
                status, message = _run_job(job, process, identity, folder, finished, writer)
                if status == "failed":
                    report.failed.append((job, message))
                else:
                    setattr(report, status, getattr(report, status) + 1)
                if on_result is not None:
                    on_result(job, status, message)
    finally:
        writer.close()
    return report


def _run_job(job, process, identity, folder, finished, writer) -> tuple[str, str | None]:
    try:
        inputs = [{"path": str(p.resolve()), "sha256": file_sha256(p)} for p in job.inputs]
    except OSError as err:
        return "failed", f"cannot read '{err.filename}': {err.strerror}"
    key = job.output.resolve().relative_to(folder.resolve()).as_posix()
    hashes = [i["sha256"] for i in inputs]
    candidates = [
        e
        for e in finished.get(key, [])
        if [i.get("sha256") for i in e.get("inputs", [])] == hashes and e.get("model") == identity
    ]
    if candidates and job.output.is_file():
        digest = file_sha256(job.output)
        if any(e.get("output_sha256") == digest for e in candidates):
            return "skipped", None

    def save(tmp: Path) -> None:
        process(job, tmp)
        entry = {
            "output": key,
            "output_sha256": file_sha256(tmp),
            "inputs": inputs,
            "model": identity,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        writer.append(entry)  # before the rename: an output in place always has its entry

    try:
        atomic_write(job.output, save)
    except ZoomsrError as err:
        return "failed", str(err)
    return "done", None


# ---------------------------------------------------------------------------------- list files


def read_list(path: str | os.PathLike, fields: bool = True) -> list[list[str]]:
    """The jobs of a list file, one per line; blank lines and lines starting with '#' are
    skipped. With ``fields``, a line's fields are separated by tabs when it has a tab, else by
    spaces; without, the whole line is one path. Relative paths are relative to the current
    folder (as ``find`` prints them)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ZoomsrError(f"list file '{path}' not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ZoomsrError(f"cannot read list file '{path}': {err}") from None
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            parts = line.split("\t" if "\t" in line else None) if fields else [line]
            rows.append([f.strip() for f in parts if f.strip()])
    if not rows:
        raise ZoomsrError(f"list file '{path}' names no files")
    return rows


__all__ = [
    "BatchReport",
    "Job",
    "clean_stale_temps",
    "file_sha256",
    "model_identity",
    "parse_shard",
    "rank_device",
    "read_list",
    "read_manifests",
    "run_batch",
    "select_shard",
]

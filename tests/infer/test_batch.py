"""The resumable batch runner: manifest, skipping, temp-file clean-up, shards, list files."""

import json
import os
from pathlib import Path

import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.infer.batch import (
    Job,
    ManifestWriter,
    clean_stale_temps,
    file_sha256,
    model_identity,
    parse_shard,
    read_list,
    read_manifests,
    run_batch,
    select_shard,
)
from zoomsr.models.registry import load_model


def _jobs(tmp_path, n=6):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    jobs = []
    for i in range(n):
        (src / f"{i}.txt").write_text(f"input {i}")
        jobs.append(Job((src / f"{i}.txt",), out / f"{i}.png"))
    return jobs, out


def _reverse(job, tmp):
    """A stand-in for a model run: the output is the reversed input."""
    tmp.write_bytes(job.inputs[0].read_bytes()[::-1])


def _run(jobs, out, identity=None, process=_reverse, **kw):
    calls = []

    def counting(job, tmp):
        calls.append(job.output.name)
        process(job, tmp)

    report = run_batch(jobs, counting, {"model": "m"} if identity is None else identity, out, **kw)
    return report, calls


def test_rerun_skips_finished_outputs_and_redoes_changed_ones(tmp_path):
    jobs, out = _jobs(tmp_path)
    report, calls = _run(jobs, out)
    assert (report.done, report.skipped, report.failed) == (6, 0, [])
    assert all(j.output.read_bytes() == j.inputs[0].read_bytes()[::-1] for j in jobs)
    entries = read_manifests(out)
    assert sorted(entries) == [f"{i}.png" for i in range(6)]
    e = entries["2.png"][0]
    assert e["inputs"][0]["sha256"] == file_sha256(jobs[2].inputs[0])
    assert e["output_sha256"] == file_sha256(jobs[2].output) and e["model"] == {"model": "m"}

    report, calls = _run(jobs, out)
    assert (report.done, report.skipped, calls) == (0, 6, [])

    jobs[0].inputs[0].write_text("changed input")  # new input hash
    jobs[1].output.write_bytes(b"damaged")  # output no longer what the manifest recorded
    jobs[2].output.unlink()  # entry without its output (a kill between entry and rename)
    report, calls = _run(jobs, out)
    assert (report.done, report.skipped, sorted(calls)) == (3, 3, ["0.png", "1.png", "2.png"])
    assert all(j.output.read_bytes() == j.inputs[0].read_bytes()[::-1] for j in jobs)

    report, calls = _run(jobs, out, identity={"model": "other"})  # another model: all redone
    assert report.done == 6
    assert sorted(os.listdir(out)) == [".zoomsr-manifest.jsonl"] + [f"{i}.png" for i in range(6)]


def test_torn_manifest_line_is_ignored_and_closed(tmp_path):
    jobs, out = _jobs(tmp_path, 3)
    _run(jobs[:2], out)
    manifest = out / ".zoomsr-manifest.jsonl"
    whole = manifest.read_text()
    manifest.write_text(whole + '{"output": "2.png", "output_sha')  # SIGKILL mid-write
    assert sorted(read_manifests(out)) == ["0.png", "1.png"]
    report, calls = _run(jobs, out)
    assert (report.done, report.skipped, calls) == (1, 2, ["2.png"])
    lines = manifest.read_text().splitlines()
    assert lines[:2] == whole.splitlines() and json.loads(lines[-1])["output"] == "2.png"
    assert _run(jobs, out)[0].skipped == 3


def test_failures_are_counted_and_interrupts_leave_no_temp_files(tmp_path):
    jobs, out = _jobs(tmp_path, 4)

    def flaky(job, tmp):
        if job.output.name == "1.png":
            raise ZoomsrError("cannot read '1.txt': corrupt")
        if job.output.name == "2.png":
            tmp.write_bytes(b"half an ima")
            raise KeyboardInterrupt
        _reverse(job, tmp)

    seen = []
    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, flaky, {}, out, on_result=lambda job, status, msg: seen.append(status))
    assert seen == ["done", "failed"]
    assert sorted(os.listdir(out)) == [".zoomsr-manifest.jsonl", "0.png"]
    report, calls = _run(jobs, out, identity={})
    assert (report.done, report.skipped, calls) == (3, 1, ["1.png", "2.png", "3.png"])


def test_stale_temp_files_of_the_batch_are_removed(tmp_path):
    jobs, out = _jobs(tmp_path, 2)
    out.mkdir()
    stale = [out / ".0.tmpdeadbeef.png", out / "..1.tmp0123abcd.tmp89abcdef.png"]
    kept = [out / ".other.tmpdeadbeef.png", out / "0.tmpdeadbeef.png", out / ".0.tmpxyz.png"]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert sorted(clean_stale_temps(j.output for j in jobs)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    (out / ".1.tmp00000000.png").write_bytes(b"x")
    _run(jobs, out)
    assert not (out / ".1.tmp00000000.png").exists()


def test_shards_partition_the_batch_and_each_writes_its_own_manifest(tmp_path):
    jobs, out = _jobs(tmp_path, 7)
    parts = [select_shard(jobs[::-1], (i, 3)) for i in range(3)]
    assert sorted(len(p) for p in parts) == [2, 2, 3]
    assert sorted(j.output for p in parts for j in p) == sorted(j.output for j in jobs)
    assert parts == [select_shard(jobs, (i, 3)) for i in range(3)]  # order of the list: no matter
    for i in range(3):
        report, _calls = _run(jobs, out, shard=(i, 3))
        assert report.done == len(parts[i]) and report.selected == len(parts[i])
        assert "shard" in report.summary() and f"of {len(jobs)}" in report.summary()
    assert len(list(out.glob(".zoomsr-manifest.shard-*-of-3.jsonl"))) == 3
    assert _run(jobs, out)[0].skipped == 7  # an unsharded rerun reads every shard's manifest


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/2", "a/b", "0/0", "1/2/3", "1.0/2"])
def test_malformed_shard_is_a_user_error(text):
    with pytest.raises(ZoomsrError, match="I/N"):
        parse_shard(text, env={})


def test_shard_defaults_to_the_torchrun_rank():
    assert parse_shard("1/4", env={}) == (1, 4) and parse_shard(" 0 / 2 ", env={}) == (0, 2)
    assert parse_shard(None, env={}) is None
    assert parse_shard(None, env={"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    assert parse_shard("0/1", env={"RANK": "3", "WORLD_SIZE": "4"}) == (0, 1)
    with pytest.raises(ZoomsrError, match="RANK"):
        parse_shard(None, env={"RANK": "4", "WORLD_SIZE": "4"})


def test_outputs_that_collide_or_replace_inputs_are_refused(tmp_path):
    jobs, out = _jobs(tmp_path, 2)
    twin = Job((tmp_path / "in" / "1.txt",), jobs[0].output)
    with pytest.raises(ZoomsrError, match="would both write"):
        _run([*jobs, twin], out)
    assert _run([*jobs, jobs[0]], out)[0].done == 2  # the same job twice is one job
    inplace = Job(jobs[0].inputs, jobs[0].inputs[0])
    with pytest.raises(ZoomsrError, match="refusing to overwrite input"):
        _run([inplace], tmp_path / "in")


def test_one_writer_per_manifest(tmp_path):
    first = ManifestWriter(tmp_path / ".zoomsr-manifest.jsonl")
    try:
        with pytest.raises(ZoomsrError, match="another zoomsr run"):
            ManifestWriter(tmp_path / ".zoomsr-manifest.jsonl")
    finally:
        first.close()
    ManifestWriter(tmp_path / ".zoomsr-manifest.jsonl").close()


def test_model_identity_follows_weights_and_options():
    def build(seed):
        torch.manual_seed(seed)
        return load_model("edsr-baseline", 2, n_resblocks=1, n_feats=8)

    a = model_identity(build(0), tile=None, ensemble=False)
    assert a == model_identity(build(0), tile=None, ensemble=False)
    assert a["name"] == "edsr-baseline" and a["scale"] == 2
    assert a != model_identity(build(1), tile=None, ensemble=False)
    assert a != model_identity(build(0), tile=None, ensemble=True)
    assert model_identity(load_model("bicubic", 2)) != model_identity(load_model("bicubic", 3))


def test_list_files(tmp_path):
    lst = tmp_path / "jobs.txt"
    lst.write_text("# captures\na/wide.png b/tele.png\n\n  my wide.png\tmy tele.png  \n")
    assert read_list(lst) == [["a/wide.png", "b/tele.png"], ["my wide.png", "my tele.png"]]
    assert read_list(lst, fields=False)[1] == ["my wide.png\tmy tele.png"]
    with pytest.raises(ZoomsrError, match="not found"):
        read_list(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ZoomsrError, match="names no files"):
        read_list(Path(tmp_path / "empty.txt"))

"""Atomic writes leave either the finished file or nothing, whenever they are interrupted."""

import os

import pytest

from zoomsr import atomic


def test_writes_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic.write_text(target, "hello")
    assert target.read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("where", ["after_create", "in_save"])
def test_an_interrupt_removes_the_temporary(tmp_path, monkeypatch, where):
    target = tmp_path / "out.png"
    real_close = os.close

    def close_then_interrupt(fd):  # a signal that arrived during the create's system calls
        real_close(fd)
        raise KeyboardInterrupt

    def save(tmp):
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt

    if where == "after_create":
        monkeypatch.setattr(atomic.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(target, save)
    assert list(tmp_path.iterdir()) == []


def test_another_writers_temporary_is_left_alone(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    theirs = tmp_path / ".out.tmp00000000.txt"
    theirs.write_text("someone else's")
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda _n: "00000000")
    with pytest.raises(OSError, match="no free temporary name"):
        atomic.write_text(target, "mine")
    assert theirs.read_text() == "someone else's" and not target.exists()

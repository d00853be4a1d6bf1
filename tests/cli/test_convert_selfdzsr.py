"""``zoomsr convert`` for the SelfDZSR family, round trips on the parity fixture files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomsr.cli.main import main
from zoomsr.convert.registry import CONVERTERS
from zoomsr.convert.selfdzsr import load_aux_generator
from zoomsr.models import load_model
from zoomsr.models.checkpoints import read_weights

FIXTURE = ("parity", "selfdzsr_eccv_x4")
BOX = (9, 15, 12, 20)  # the fixture Ref's footprint in LR pixels


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1, err
    return err


def test_selfdzsr_round_trip_reproduces_the_official_output(shared, tmp_path, capsys):
    out = tmp_path / "selfdzsr_x4.safetensors"
    files = [shared(*FIXTURE, "RefSR_model_401.pth"), shared(*FIXTURE, "Student_model_400.pth")]
    assert main(["convert", "selfdzsr", *map(str, files), "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith("selfdzsr x4 (2,054,235 trainable parameters)")
    _, meta = read_weights(out)
    assert meta["converted_from"] == "RefSR_model_401.pth,Student_model_400.pth"

    model = load_model(str(out))  # the file alone says what to build
    load = lambda name: torch.from_numpy(np.load(shared(*FIXTURE, name)))  # noqa: E731
    with torch.no_grad():
        sr = model(load("lr.npy"), [load("ref.npy")], [BOX])
    torch.testing.assert_close(sr, load("sr.npy"), atol=1e-4, rtol=0)

    # an existing output is kept unless --overwrite
    assert main(["convert", "selfdzsr", *map(str, files), "-o", str(out)]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert main(["convert", "selfdzsr", *map(str, files), "-o", str(out), "--overwrite"]) == 0


def test_auxiliary_generator_round_trip(shared, tmp_path, capsys):
    src = shared(*FIXTURE, "KernelGen_model_401.pth")
    out = tmp_path / "auxlr.safetensors"
    assert main(["convert", "selfdzsr-auxlr", str(src), "-o", str(out)]) == 0
    state, meta = read_weights(out)
    assert (meta["model"], meta["scale"]) == ("selfdzsr-auxlr", "4")  # what training reads
    expected = load_aux_generator(src).state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in state)


def test_list_shows_every_converter(capsys):
    assert main(["convert", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["edsr-pytorch", *CONVERTERS]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["selfdzsr", "{refsr}"], "takes 2 checkpoint file(s)"),
        (["selfdzsr", "{student}", "{refsr}"], "not a SelfDZSR RefSR checkpoint"),
        (["nosuch", "{refsr}"], "unknown format 'nosuch'"),
        (["selfdzsr", "{refsr}", "missing.pth"], "not found"),
        ([], "name a format"),
    ],
)
def test_bad_arguments_give_one_line(shared, tmp_path, capsys, args, message):
    names = {
        "refsr": str(shared(*FIXTURE, "RefSR_model_401.pth")),
        "student": str(shared(*FIXTURE, "Student_model_400.pth")),
    }
    out = tmp_path / "x.safetensors"
    assert main(["convert", *[a.format(**names) for a in args], "-o", str(out)]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()

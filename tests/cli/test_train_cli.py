from pathlib import Path

import pytest

from zoomsr.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "nope.yaml"], "config file 'nope.yaml' not found"),
        (
            ["train", str(REPO / "configs/course/postup_x2_tv.yaml"), "--set", "optim.lrr=1"],
            "did you mean 'optim.lr'",
        ),
        (
            ["train", str(REPO / "configs/course/postup_x2_tv.yaml"), "--set", "model.name=nosuch"],
            "unknown model 'nosuch'",
        ),
        (
            ["train", str(REPO / "configs/course/postup_x2_tv.yaml"), "--set", "loss=1*L7"],
            "unknown loss term 'L7'",
        ),
        (
            ["train", str(REPO / "configs/course/postup_x2_tv.yaml"), "--set", "model.scale=5"],
            "does not support scale 5",
        ),
    ],
)
def test_bad_training_input_gives_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and message in err and err.count("\n") == 1


def test_every_shipped_config_loads():
    from zoomsr.train.config import load_config
    from zoomsr.train.matcher import load_matcher_config

    for path in sorted((REPO / "configs").rglob("*.yaml")):
        if path.parent.name == "matcher":  # zoomsr train-matcher recipes
            assert load_matcher_config(path, []).run.steps > 0, path
            continue
        if path.parent.name == "degradations":  # data.train.degradation files
            from zoomsr.data.degraded import load_degradation_yaml

            assert load_degradation_yaml(path).name, path
            continue
        cfg = load_config(path)
        assert cfg.model.name and cfg.run.steps > 0, path

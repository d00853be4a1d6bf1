"""Unpaired LR/HR training sets (SDFlow): items are pure functions of (seed, index), and folders
that cannot work fail with one clear message each."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from zoomsr.data.unpaired import UnpairedTrainSet
from zoomsr.errors import ZoomsrError


def _crops(shared, folder, size, names=("baby", "bird", "butterfly"), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        im = Image.open(shared("data", "Set5", "HR", f"{n}.png")).convert(mode)
        im.crop((0, 0, size, size)).save(folder / f"{n}.png")
    return folder


@pytest.fixture(scope="module")
def folders(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("unpaired")
    return _crops(shared, root / "lr", 24), _crops(shared, root / "hr", 80)


def _set(lr, hr, patch=32, **kw):
    return UnpairedTrainSet.from_folders([str(lr)], [str(hr)], 4, patch, **kw)


def test_items_are_deterministic_and_shaped(folders):
    lr, hr = folders
    a, b = _set(lr, hr, seed=3), _set(lr, hr, seed=3)
    x, y = a[7]
    assert x.shape == (3, 8, 8) and y.shape == (3, 32, 32)
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert all(torch.equal(s, t) for s, t in zip(a[7], b[7], strict=True))
    assert not torch.equal(a[7][1], a[8][1])  # another index, another patch
    assert not torch.equal(_set(lr, hr, seed=4)[7][1], y)  # another seed, another patch
    # 8-bit levels unless dequantised; dequantised values lie inside their level's bin
    assert torch.equal(torch.round(y * 255), y * 255)
    yq = _set(lr, hr, seed=3, dequantize=True)[7][1]
    assert not torch.equal(yq, y) and yq.min() >= 0 and yq.max() < 1
    assert (torch.floor(yq * 256) == torch.round(y * 255)).float().mean() > 0.999  # float32 ulps


def test_lr_and_hr_patches_are_independent(folders):
    lr, hr = folders
    ds = _set(lr, hr, flip=False, rot90=False)
    pairs = {(int(ds[i][0].sum() * 1000), int(ds[i][1].sum() * 1000)) for i in range(12)}
    assert len(pairs) == 12


def test_gray_sets_become_rgb(shared, tmp_path):
    lr = _crops(shared, tmp_path / "lr", 24, mode="L")
    hr = _crops(shared, tmp_path / "hr", 40, mode="L")
    x, y = _set(lr, hr)[0]
    assert x.shape[0] == 3 and y.shape[0] == 3


def _message(fn) -> str:
    with pytest.raises(ZoomsrError) as err:
        fn()
    text = str(err.value)
    assert "\n" not in text
    return text


def test_folder_errors(shared, folders, tmp_path):
    lr, hr = folders
    assert "does not exist" in _message(lambda: _set(tmp_path / "nope", hr))
    assert "data.train.lr" in _message(lambda: _set(tmp_path / "nope", hr))
    (tmp_path / "empty").mkdir()
    msg = _message(lambda: _set(lr, tmp_path / "empty"))
    assert "no images" in msg and "HR" in msg
    one = _crops(shared, tmp_path / "one", 80, names=("baby",))
    msg = _message(lambda: _set(lr, one))
    assert "1 usable image" in msg and "at least 2" in msg
    msg = _message(lambda: _set(lr, hr, patch=96))  # HR crops are 80 px
    assert "smaller than the 96x96 HR patch" in msg
    msg = _message(lambda: _set(lr, hr, patch=128))  # LR crops are 24 px < 32
    assert "LR" in msg and "32x32" in msg
    gray = _crops(shared, tmp_path / "gray", 24, mode="L")
    msg = _message(lambda: _set(gray, hr))
    assert "gray" in msg and "colour" in msg
    assert "both an LR and an HR" in _message(lambda: _set(hr, hr))
    assert "multiple of the scale" in _message(lambda: _set(lr, hr, patch=30))


def test_small_images_are_left_out_when_enough_remain(shared, folders, tmp_path):
    lr, _ = folders
    hr = _crops(shared, tmp_path / "hr", 80)
    Image.new("RGB", (20, 20)).save(hr / "tiny.png")
    ds = _set(lr, hr)
    assert len(ds.hr_images) == 3

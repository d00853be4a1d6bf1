import torch

from zoomsr.data.sisr import (
    SISRPairedSet,
    SISRTrainSet,
    StepSampler,
    load_training_pairs,
    random_dihedral,
)
from zoomsr.ops.resize import imresize


def _images(n=3, size=(3, 70, 90)):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, size, generator=g, dtype=torch.uint8) for _ in range(n)]


def test_patches_are_exact_bicubic_pairs_and_deterministic():
    ds = SISRTrainSet(_images(), scale=3, patch=48, seed=1)
    lr, hr = ds[123]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 48, 48)
    assert torch.equal(
        torch.round(imresize(hr.double(), 1 / 3, levels=255).float() * 255), torch.round(lr * 255)
    )
    again = SISRTrainSet(_images(), scale=3, patch=48, seed=1)[123]
    assert torch.equal(again[1], hr)
    assert not torch.equal(ds[124][1], hr)


def test_sampler_splits_ranks_and_resumes():
    assert list(StepSampler(8, 16)) == list(range(8, 16))
    assert list(StepSampler(0, 8, rank=1, world=2)) == [1, 3, 5, 7]
    assert len(StepSampler(0, 9, rank=0, world=2)) == 5


def test_dihedral_codes_are_the_eight_symmetries():
    x = torch.arange(6.0).view(1, 2, 3)
    variants = {
        (*random_dihedral(x, c).flatten().tolist(), random_dihedral(x, c).shape) for c in range(8)
    }
    assert len(variants) == 8


def test_paired_folders(tmp_path, shared):
    from PIL import Image

    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for name in ("baby", "bird"):
        Image.open(shared("data", "Set5", "HR", f"{name}.png")).save(hr_dir / f"{name}.png")
        Image.open(shared("data", "Set5", "LR_bicubic", "X2", f"{name}x2.png")).save(
            lr_dir / f"{name}x2.png"
        )
    pairs = load_training_pairs([str(hr_dir)], str(lr_dir), 2)
    ds = SISRPairedSet(pairs, scale=2, patch=32, seed=0)
    lr, hr = ds[5]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
    # Away from the patch border (the kernel's reach), the LR patch is the MATLAB downscale of
    # its HR patch, since Set5's LR files are exact: so the two are aligned.
    down = imresize(hr.double(), 0.5, levels=255).float()
    assert (down - lr)[:, 2:-2, 2:-2].abs().max() < 1e-6

"""The shipped default weights: present, verified, loadable, and tiling-safe."""

import torch

from zoomsr.infer.engine import InferOptions, run_sisr
from zoomsr.io import read_image
from zoomsr.models import load_model
from zoomsr.models.zoo import WEIGHTS_DIR, read_manifest, sha256_file


def test_manifest_entries_match_their_files():
    models = read_manifest()["models"]
    assert {"default-x2", "default-x4"} <= set(models)
    for name, entry in models.items():
        path = WEIGHTS_DIR / entry["file"]
        assert path.stat().st_size < 8 << 20, name  # shipped weights stay a few MB
        assert sha256_file(path) == entry["sha256"], name
        for key in ("data", "steps", "hardware", "command", "train_hours"):
            assert entry[key], (name, key)


def test_default_x4_tiled_equals_untiled_on_a_512_crop(shared):
    model = load_model("default-x4")
    assert model.scale == 4
    photo = read_image(shared("data", "photos", "tile_mural.jpg")).color
    crop = photo[:, 400:912, 600:1112][None]
    whole = run_sisr(model, crop, opts=InferOptions(tile=0))
    tiled = run_sisr(model, crop, opts=InferOptions(tile=160, overlap=16))
    assert whole.shape == (1, 3, 2048, 2048)
    assert (whole - tiled).abs().max().item() <= 1 / 255


def test_default_is_better_than_bicubic(shared):
    from zoomsr.data.sisr import find_eval_pairs, load_eval_sample
    from zoomsr.metrics import psnr

    sample = load_eval_sample(find_eval_pairs(shared("data", "Set5"), 2)[1], 2)  # bird
    sr = run_sisr(load_model("default-x2"), sample.lr)
    bic = run_sisr(load_model("bicubic", 2), sample.lr)
    assert (
        psnr(sr, sample.hr, shave=2, y_only=True) > psnr(bic, sample.hr, shave=2, y_only=True) + 1.0
    )
    assert torch.isfinite(sr).all()


def test_shipped_zoom_models_load_with_their_imagenet_matcher():
    from zoomsr.infer.pipelines import SHIPPED_ZOOM_MODELS
    from zoomsr.models.registry import get_spec
    from zoomsr.models.zoom import StudentExtractor

    models = read_manifest()["models"]
    shipped = [name for name in SHIPPED_ZOOM_MODELS if name in models]
    assert "selfdzsr-pp-x4" in shipped  # the default of `zoomsr zoom` and `make demo`
    imagenet = StudentExtractor().load_imagenet().state_dict()
    for name in shipped:
        entry = models[name]
        assert get_spec(name).task == "zoom"
        model = load_model(name)
        assert name == f"{entry['model']}-x{entry['scale']}"  # the name says what it is
        assert model.model_name == entry["model"] and model.scale == entry["scale"], name
        assert not model.training
        for k, v in model.matcher.state_dict().items():
            assert torch.equal(v, imagenet[k]), (name, k)
        assert all(p.dtype == torch.float32 for p in model.parameters()), name

"""Test-time augmentation and sliding-window inference (dfr.evaluation.tta)."""
import pytest
import torch
from torch import nn


class PixelModel(nn.Module):
    """predict_probs = softmax(1x1 conv(image)): a per-pixel model, so crops cannot change it."""

    def __init__(self, num_classes=4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.05)
        self.calls = []

    @property
    def device(self):
        return torch.device("cpu")

    def predict_probs(self, images):
        assert images.dtype == torch.uint8 and images.dim() == 4
        self.calls.append(tuple(images.shape[-2:]))
        return self.conv(images.float() - 128.0).softmax(1)


def _image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


def test_tta_output_is_at_original_size_and_averages_every_view():
    from dfr.evaluation import SemSegTTA

    model = PixelModel()
    tta = SemSegTTA(model, scales=[0.5, 1.0, 1.5], flip=True)
    # mapper image 40x60 for an original image of 81x122 (e.g. a resized test input)
    out = tta([{"image": _image(40, 60), "height": 81, "width": 122}])
    p = out[0]["sem_seg"]
    assert p.shape == (4, 81, 122)
    assert torch.allclose(p.sum(0), torch.ones(81, 122), atol=1e-5)
    # one batched (image, flipped) call per scale, at the scaled sizes
    assert model.calls == [(20, 30), (40, 60), (60, 90)]


def test_tta_single_scale_without_flip_equals_plain_prediction():
    from dfr.evaluation import SemSegTTA

    model = PixelModel()
    img = _image(33, 47, seed=1)
    p = SemSegTTA(model, scales=[1.0], flip=False)([{"image": img, "height": 33, "width": 47}])
    ref = model.predict_probs(img[None])[0]
    assert torch.equal(p[0]["sem_seg"], ref)


def test_flip_of_a_pixel_model_is_a_no_op():
    from dfr.evaluation import SemSegTTA

    model = PixelModel()
    img = _image(16, 24, seed=2)
    a = SemSegTTA(model, scales=[1.0], flip=True)([{"image": img, "height": 16, "width": 24}])
    b = model.predict_probs(img[None])[0]
    assert torch.allclose(a[0]["sem_seg"], b, atol=1e-6)


@pytest.mark.parametrize("hw", [(70, 50), (64, 64), (20, 30)])
def test_slide_equals_whole_for_a_pixel_model_and_covers_every_pixel(hw):
    from dfr.evaluation import slide_probs

    model = PixelModel()
    img = _image(*hw, seed=3)[None]
    whole = model.predict_probs(img)
    model.calls.clear()
    slide = slide_probs(model.predict_probs, img, crop_size=(32, 32), stride=(21, 21))
    assert slide.shape == whole.shape
    assert torch.allclose(slide, whole, atol=1e-6)
    h, w = hw
    n_expected = (max(h - 32 + 20, 0) // 21 + 1) * (max(w - 32 + 20, 0) // 21 + 1)
    assert len(model.calls) == n_expected
    assert all(c == (min(32, h), min(32, w)) for c in model.calls)


def test_slide_mode_through_the_wrapper_with_mmseg_default_window():
    from dfr.evaluation import SemSegTTA

    model = PixelModel()
    img = _image(600, 700, seed=4)
    tta = SemSegTTA(model, scales=[1.0], flip=False, mode="slide")
    out = tta([{"image": img, "height": 600, "width": 700}])[0]["sem_seg"]
    assert model.calls == [(512, 512)] * 4  # 2 x 2 windows, stride 341
    assert torch.allclose(out, model.predict_probs(img[None])[0], atol=1e-6)


def test_wrapper_rejects_models_without_predict_probs_and_unknown_modes():
    from dfr.evaluation import SemSegTTA

    with pytest.raises(TypeError, match="predict_probs"):
        SemSegTTA(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="TEST.MODE"):
        SemSegTTA(PixelModel(), mode="sliding")


def test_tta_on_the_dfr_model_single_scale_equals_model_and_ms_is_at_original_size(tmp_path):
    from detectron2.data import DatasetCatalog
    from engine_helpers import register_tiny, setup_cfg

    from dfr.data import ScribbleDatasetMapper
    from dfr.engine import Trainer
    from dfr.evaluation import SemSegTTA

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix)
    torch.manual_seed(0)
    model = Trainer.build_model(cfg).eval()
    record = DatasetCatalog.get(f"{prefix}_scribble_val")[0]
    inp = ScribbleDatasetMapper(cfg, is_train=False)(record)
    with torch.no_grad():
        ref = model([inp])[0]["sem_seg"]
        ss = SemSegTTA(model, scales=[1.0], flip=False)([inp])[0]["sem_seg"]
        assert ss.shape == ref.shape == (4, inp["height"], inp["width"])
        assert torch.allclose(ss, ref, atol=1e-5)
        # the mapper gave a 2x smaller image than the original: output still at original size
        small = dict(inp, image=inp["image"][:, ::2, ::2].contiguous())
        ms = SemSegTTA(cfg, model)([small])[0]["sem_seg"]  # TEST.AUG.SCALES (6 ratios) + flip
    assert ms.shape == (4, inp["height"], inp["width"])
    assert torch.allclose(ms.sum(0), torch.ones_like(ms[0]), atol=1e-4)

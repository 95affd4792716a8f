"""Test-time augmentation and sliding-window inference (dfr.evaluation.tta), against mmseg's
definitions: slide averages LOGITS; multi-scale resizes each view's logits to the original
size, then softmax, then averages probabilities; a single view equals the plain model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn


class ContextModel(nn.Module):
    """predict_logits = 3x3 conv(image) + (mean of the input window): each pixel's logits
    depend on the whole crop it is seen in, so a wrong slide / averaging rule is visible."""

    def __init__(self, num_classes=4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.1)
            self.conv.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5])[:num_classes])
        self.calls = []

    @property
    def device(self):
        return torch.device("cpu")

    def predict_logits(self, images):
        assert images.dtype == torch.uint8 and images.dim() == 4
        self.calls.append(tuple(images.shape[-2:]))
        x = images.double() / 64.0 - 2.0
        return self.conv.double()(x) + x.mean(dim=(1, 2, 3), keepdim=True) * 3.0


def _image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("hw", [(70, 50), (64, 64), (20, 30)])
def test_slide_averages_logits_of_every_window_brute_force(hw):
    from dfr.evaluation import slide_logits

    model = ContextModel()
    img = _image(*hw, seed=3)[None]
    h, w = hw
    out = slide_logits(model.predict_logits, img, crop_size=(32, 32), stride=(21, 21))
    # brute force: enumerate mmseg's windows, accumulate per pixel in float64
    total = torch.zeros(1, 4, h, w, dtype=torch.float64)
    count = torch.zeros(h, w, dtype=torch.float64)
    prob_total = torch.zeros_like(total)
    ys = sorted({max(min(i * 21 + 32, h) - 32, 0) for i in range((max(h - 32 + 20, 0)) // 21 + 1)})
    xs = sorted({max(min(j * 21 + 32, w) - 32, 0) for j in range((max(w - 32 + 20, 0)) // 21 + 1)})
    for y in ys:
        for x in xs:
            logit = model.predict_logits(img[:, :, y : y + 32, x : x + 32])
            total[:, :, y : y + 32, x : x + 32] += logit
            prob_total[:, :, y : y + 32, x : x + 32] += logit.softmax(1)
            count[y : y + 32, x : x + 32] += 1
    assert (count > 0).all()
    assert torch.allclose(out, total / count, atol=1e-12)
    if len(ys) * len(xs) > 1:  # probability averaging (the old rule) is measurably different
        assert (out.softmax(1) - prob_total / count).abs().max() > 1e-3


def test_tta_view_sizes_follow_mmseg_0x_multiscale_and_1x_ratios():
    from dfr.evaluation import tta_sizes

    # VOC-sized 375x500 with (2048, 512): r = 1 -> short side 512; r = 0.5 -> fits (1024, 256)
    assert tta_sizes(375, 500, [0.5, 1.0, 1.75], (2048, 512)) == [(256, 341), (512, 683),
                                                                  (896, 1195)]  # fmt: skip
    # a long panorama: the long side binds (2048 * 0.75 = 1536)
    assert tta_sizes(100, 2000, [0.75], (2048, 512)) == [(77, 1536)]
    # no base scale (mmseg 1.x TestTimeAug / native size): ratios of the original size
    assert tta_sizes(375, 500, [0.5, 1.25]) == [(188, 250), (469, 625)]


def test_tta_resizes_logits_to_original_size_before_softmax_and_averages_probabilities():
    from dfr.evaluation import SemSegTTA

    model = ContextModel()
    img = _image(30, 40, seed=1)
    tta = SemSegTTA(model, scales=[0.5, 1.0], flip=True, test_scale=(80, 60))
    out = tta([{"image": img, "height": 30, "width": 40}])[0]["sem_seg"]
    assert model.calls == [(30, 40), (60, 80)]  # one (image, flipped) batch per scale
    # expected, view by view (OpenCV bilinear resize of the original, as mmcv)
    hwc = img.permute(1, 2, 0).numpy()
    expect, logit_sum = 0, 0
    for h, w in [(30, 40), (60, 80)]:
        x = torch.from_numpy(np.ascontiguousarray(
            __import__("cv2").resize(hwc, (w, h), interpolation=1).transpose(2, 0, 1)))
        for flip in (False, True):
            v = x.flip(-1) if flip else x
            y = model.predict_logits(v[None])
            y = y.flip(-1) if flip else y
            y = F.interpolate(y, size=(30, 40), mode="bilinear", align_corners=False)
            expect = expect + y.softmax(1)[0] / 4
            logit_sum = logit_sum + y[0] / 4
    assert out.shape == (4, 30, 40)
    assert torch.allclose(out.double(), expect, atol=1e-9)
    assert (out.double() - logit_sum.softmax(0)).abs().max() > 1e-3  # not logit averaging


def test_wrapper_rejects_models_without_predict_logits_and_unknown_modes():
    from dfr.evaluation import SemSegTTA

    with pytest.raises(TypeError, match="predict_logits"):
        SemSegTTA(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="TEST.MODE"):
        SemSegTTA(ContextModel(), mode="sliding")


@pytest.mark.parametrize("test_resize", [False, True])
def test_single_view_tta_and_one_window_slide_equal_the_dfr_model_at_odd_sizes(
    tmp_path, test_resize
):
    """Single-scale TTA and slide with one window give the plain model's output (1e-6), at an
    odd size, with mmseg's test resize on (TTA gets the ORIGINAL image and resizes it with
    the same rule) and off."""
    from helpers import setup_cfg

    from dfr.data import ScribbleDatasetMapper
    from dfr.engine import Trainer
    from dfr.evaluation import SemSegTTA
    from PIL import Image

    path = tmp_path / "odd.png"
    Image.fromarray(_image(45, 71, seed=5).permute(1, 2, 0).numpy()).save(path)
    record = {"file_name": str(path), "height": 45, "width": 71, "image_id": "odd"}
    cfg = setup_cfg(tmp_path / "run", "synthetic_tiny", "INPUT.DFR.TEST_RESIZE", str(test_resize),
                    "INPUT.DFR.RESIZE_SCALE", "[160, 100]")  # fmt: skip
    cfg.defrost()
    torch.manual_seed(0)
    model = Trainer.build_model(cfg).eval()
    plain_in = ScribbleDatasetMapper(cfg, is_train=False)(record)
    orig_in = ScribbleDatasetMapper(cfg, is_train=False, test_resize=False)(record)
    assert tuple(plain_in["image"].shape[-2:]) == ((100, 158) if test_resize else (45, 71))
    with torch.no_grad():
        ref = model([plain_in])[0]["sem_seg"]
        ss = SemSegTTA(cfg, model, tta=False)([orig_in])[0]["sem_seg"]
        cfg.TEST.MODE, cfg.TEST.SLIDE.CROP_SIZE = "slide", [512, 512]
        slide = SemSegTTA(cfg, model, tta=False)([orig_in])[0]["sem_seg"]
        ms = SemSegTTA(cfg, model)([orig_in])[0]["sem_seg"]  # 6 ratios x flip, slide
    assert ref.shape == ss.shape == slide.shape == ms.shape == (4, 45, 71)
    assert (ss - ref).abs().max() <= 1e-6 and (slide - ref).abs().max() <= 1e-6
    assert torch.allclose(ms.sum(0), torch.ones(45, 71), atol=1e-5)
    assert (ms - ref).abs().max() > 1e-4  # the other views do change the average


# ---- labels at the original size with bounded memory (dfr.evaluation.postprocess) ----------
def _full_float(views, size):
    """The naive path: every class resized to `size` in float, then softmax (and the sum
    over views): what the model's inference / SemSegTTA's probabilities compute."""
    from dfr.utils import resize

    total, logits = 0, None
    for y, via, flip in views:
        y = y[None]
        if via is not None:
            y = resize(y, via)
        if flip:
            y = y.flip(-1)
        logits = F.interpolate(y, size=size, mode="bilinear", align_corners=False)[0]
        total = total + logits.softmax(0)
    return logits, total


def _random_case(seed, views=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=g))  # noqa: E731
    c, h, w = r(2, 160), r(2, 17), r(2, 17)
    size = (r(1, 70), r(1, 70))
    out = []
    for _ in range(views):
        y = torch.randn(c, h, w, generator=g) * 3
        for _ in range(r(0, 4)):  # identical class planes: exact ties, the lower class wins
            i, j = sorted((r(0, c), r(0, c)))
            y[j] = y[i]
        via = (r(h, 4 * h + 1), r(w, 4 * w + 1)) if r(0, 2) else None
        out.append((y, via, bool(r(0, 2)) if views > 1 else False))
    # a chunk of 1 class up to all of them
    chunk = 4 * (size[0] * size[1] + max(v[1][0] * v[1][1] if v[1] else 0 for v in out))
    return out, size, chunk * r(1, c + 1)


@pytest.mark.parametrize("seed", range(16))
def test_chunked_labels_equal_the_full_float_argmax(seed, monkeypatch):
    """One view (plain inference): the labels resized a few classes at a time equal, bit for
    bit, the argmax of the logits resized all at once, ties to the lower class; the naive
    softmax's argmax too, wherever two probabilities do not round to one float. No resized
    tensor holds more classes than the chunk allows."""
    from dfr.evaluation import postprocess as pp

    views, size, chunk = _random_case(seed)
    sizes = []
    real = pp.resize
    monkeypatch.setattr(pp, "resize", lambda x, s: sizes.append(x.shape[1]) or real(x, s))
    got = pp.labels_at_size(views, size, chunk_bytes=chunk)
    logits, probs = _full_float(views, size)
    assert got.shape == size and got.dtype == pp.label_dtype(logits.shape[0])
    assert torch.equal(got.long(), logits.argmax(0))
    tie = probs.topk(2, dim=0).values if probs.shape[0] > 1 else None
    differ = got.long() != probs.argmax(0)
    assert tie is None or (tie[0][differ] == tie[1][differ]).all()
    px = size[0] * size[1] + (views[0][1][0] * views[0][1][1] if views[0][1] else 0)
    assert max(sizes) == min(logits.shape[0], max(1, chunk // (4 * px)))


@pytest.mark.parametrize("seed", range(8))
def test_chunked_labels_of_several_views_equal_the_summed_softmax_argmax(seed):
    """Multi-scale / flip views: the argmax of the summed softmax, computed over class chunks
    from each view's log-sum-exp; a pixel may differ only where the two best sums are within
    float rounding of each other."""
    from dfr.evaluation.postprocess import labels_at_size

    views, size, chunk = _random_case(100 + seed, views=int(seed % 3) + 2)
    got = labels_at_size(views, size, chunk_bytes=chunk).long()
    _, total = _full_float(views, size)
    differ = got != total.argmax(0)
    top = total.topk(2, dim=0).values
    assert int(differ.sum()) <= 1 and ((top[0] - top[1])[differ] < 1e-5).all()
    assert torch.equal(torch.gather(total, 0, got[None])[0][differ], top[0][differ]) or \
        ((top[0] - torch.gather(total, 0, got[None])[0])[differ] < 1e-5).all()


@pytest.mark.parametrize("test_resize", [False, True])
def test_labels_output_equals_the_dfr_model_with_150_classes(tmp_path, test_resize):
    """SemSegTTA(output="labels") on the DFR model with 150 classes, at an odd size, resized
    one class at a time: the labels of the model's own inference (stride-4 logits -> input
    size -> original size, softmax); with multi-scale + flip, those of the averaged
    probabilities."""
    from helpers import setup_cfg
    from PIL import Image

    from dfr.data import ScribbleDatasetMapper
    from dfr.engine import Trainer
    from dfr.evaluation import SemSegTTA

    path = tmp_path / "odd.png"
    Image.fromarray(_image(45, 71, seed=7).permute(1, 2, 0).numpy()).save(path)
    record = {"file_name": str(path), "height": 45, "width": 71, "image_id": "odd"}
    cfg = setup_cfg(tmp_path / "run", "synthetic_tiny", "INPUT.DFR.TEST_RESIZE", str(test_resize),
                    "INPUT.DFR.RESIZE_SCALE", "[160, 100]", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 150,
                    "TEST.AUG.SCALES", "[0.75, 1.0]", "TEST.AUG.FLIP", "True")  # fmt: skip
    torch.manual_seed(0)
    model = Trainer.build_model(cfg).eval()
    plain_in = ScribbleDatasetMapper(cfg, is_train=False)(record)
    orig_in = ScribbleDatasetMapper(cfg, is_train=False, test_resize=False)(record)
    one, several = (SemSegTTA(cfg, model, tta=t, output="labels") for t in (False, True))
    for wrapper in (one, several):  # one class at a time (TEST.RESIZE_CHUNK_MB is >= 1 MB)
        wrapper.chunk_bytes = 4 * (45 * 71 + 100 * 158)
    with torch.no_grad():
        ref = model([plain_in])[0]["sem_seg"]
        labels = one([orig_in])[0]
        ms_probs = SemSegTTA(cfg, model)([orig_in])[0]["sem_seg"]
        ms = several([orig_in])[0]["sem_seg_labels"]
    assert set(labels) == {"sem_seg_labels"} and labels["sem_seg_labels"].shape == (45, 71)
    assert torch.equal(labels["sem_seg_labels"].long(), ref.argmax(0))
    assert len(ref.argmax(0).unique()) > 3  # many classes in play
    assert torch.equal(ms.long(), ms_probs.argmax(0))


def test_predictions_build_no_autograd_graph():
    """predict_image / predict_labels run without gradient (a graph per view would hold every
    activation of the network), whatever the caller's grad mode."""
    from dfr.evaluation import SemSegTTA

    model = ContextModel()
    tta = SemSegTTA(model, scales=[0.5, 1.0], flip=True)
    img = _image(20, 30, seed=2)
    assert not tta.predict_image(img, (20, 30)).requires_grad
    assert not tta.predict_labels(img, (20, 30)).requires_grad

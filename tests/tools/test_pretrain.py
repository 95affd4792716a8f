"""tools/pretrain_synthetic_backbone.py: its checkpoint is read by the real Swin
loader (mmseg format, plain tensors) into exactly the pretrained weights; the pretraining
task is disjoint from the benchmark (classes, low-saturation colours)."""
import importlib.util
import sys

import cv2
import numpy as np
import torch
from helpers import INSTANT, REPO


def _tool():
    spec = importlib.util.spec_from_file_location(
        "pretrain_tool", REPO / "tools" / "pretrain_synthetic_backbone.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["pretrain_tool"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_checkpoint_round_trips_through_the_swin_loader(tmp_path):
    from detectron2.modeling import build_backbone

    from dfr.config import get_dfr_cfg

    tool = _tool()
    cfg = get_dfr_cfg(INSTANT)
    src = build_backbone(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # distinct values everywhere, so any permutation error shows
        for p in src.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    sd = tool.backbone_to_mmseg(src.state_dict())
    assert any(k.startswith("stages.0.downsample.reduction") for k in sd) and "norm3.bias" in sd
    path = tmp_path / "p.pth"
    torch.save({"state_dict": sd}, path)
    assert torch.load(path, weights_only=True)["state_dict"].keys() == sd.keys()
    cfg.MODEL.SWIN.PRETRAINED = str(path)
    dst = build_backbone(cfg)  # the real loader path of MODEL.SWIN.PRETRAINED
    a, b = src.state_dict(), dst.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = torch.randn(1, 3, 64, 96, generator=g)
    src.eval(), dst.eval()
    assert all(torch.equal(src(x)[k], dst(x)[k]) for k in src(x))


def test_pretraining_task_is_disjoint_from_the_benchmark():
    from dfr.data.synthetic import SYNTHETIC_CLASSES
    from dfr_tools.synthetic_pretrain import PRETRAIN_CLASSES, render_pretrain_sample

    assert set(PRETRAIN_CLASSES) & set(SYNTHETIC_CLASSES) == {"background"}
    tool = _tool()
    batch = tool.make_batch(0, 0, 2)
    assert batch[0]["image"].shape == (3, 128, 128) and batch[0]["sem_seg"].dtype == torch.long
    img, lab = render_pretrain_sample(np.random.default_rng(1), 96, 80)
    assert img.shape == (96, 80, 3) and lab.max() < len(PRETRAIN_CLASSES)
    sat = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1]
    assert np.median(sat) < 45  # benchmark objects: S >= 60

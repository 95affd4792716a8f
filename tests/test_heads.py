"""UperNet fusion and the heads: output shapes and channels (tiny spatial sizes, CPU)."""
import pytest
import torch
from detectron2.layers import ShapeSpec

SWIN_B = {f"res{i + 2}": ShapeSpec(channels=128 * 2**i, stride=4 * 2**i) for i in range(4)}


def _features(shapes, b=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(b, s.channels, h // s.stride, w // s.stride, generator=g)
            for k, s in shapes.items()}


def _fusion(levels, channels=512, shapes=SWIN_B):
    from dfr.modeling.heads import UperNetFusion

    return UperNetFusion(shapes, in_features=list(shapes), channels=channels,
                         fusion_levels=levels)


def test_fused_map_is_2048_channels_at_stride_4_for_swin_b():
    fusion = _fusion(["res2", "res3", "res4", "res5"]).eval()
    assert fusion.output_shape() == ShapeSpec(channels=2048, stride=4)
    with torch.no_grad():
        fused = fusion(_features(SWIN_B))
    assert tuple(fused.shape) == (2, 2048, 16, 24)
    # PPM scales 1, 2, 3, 6 and 3 lateral/FPN convs (levels below res5)
    assert [m[0].output_size for m in fusion.ppm] == [1, 2, 3, 6]
    assert len(fusion.lateral_convs) == len(fusion.fpn_convs) == 3
    assert list(fusion.fpn_convs.keys()) == ["res2", "res3", "res4"]


@pytest.mark.parametrize(
    "levels", [["res2"], ["res5"], ["res3", "res4"], ["res2", "res3", "res4"]]
)
def test_fewer_fusion_levels_give_fewer_channels(levels):
    shapes = {k: ShapeSpec(channels=s.channels // 8, stride=s.stride) for k, s in SWIN_B.items()}
    full = _fusion(["res2", "res3", "res4", "res5"], channels=16, shapes=shapes).eval()
    part = _fusion(levels, channels=16, shapes=shapes).eval()
    order = ["res2", "res3", "res4", "res5"]
    # Same parameters, minus what the fused map cannot reach (it would never get a gradient
    # under DistributedDataParallel): the 3x3 output convs of levels that are not fused and
    # the laterals below the finest fused level (a lateral only feeds its level and finer ones).
    res = part.load_state_dict(full.state_dict(), strict=False)
    assert res.missing_keys == []
    finest = min(order.index(f) for f in levels)
    expect = {f"fpn_convs.{f}" for f in order[:3] if f not in levels}
    expect |= {f"lateral_convs.{f}" for f in order[:finest]}
    assert {".".join(k.split(".")[:2]) for k in res.unexpected_keys} == expect
    feats = _features(shapes)
    with torch.no_grad():
        a, b = full(feats), part(feats)
    assert tuple(b.shape) == (2, 16 * len(levels), 16, 24)
    for j, name in enumerate(levels):  # the selected slices of the full fused map
        i = order.index(name)
        assert torch.allclose(b[:, 16 * j : 16 * (j + 1)], a[:, 16 * i : 16 * (i + 1)])


def test_semantic_feature_and_aux_heads():
    from dfr.modeling.heads import FCNAuxHead, FeatureConsistencyHead, UperNetHead

    fused = torch.randn(2, 64, 16, 24)
    sem = UperNetHead(in_channels=64, num_classes=21, channels=32, dropout=0.1)
    assert sem.dropout.p == pytest.approx(0.1)
    assert sem.conv.weight.shape[-2:] == (3, 3) and sem.predictor.weight.shape[-2:] == (1, 1)
    assert tuple(sem(fused).shape) == (2, 21, 16, 24)
    feat = FeatureConsistencyHead(in_channels=64, feat_dim=128)
    f = feat(fused).detach()
    assert tuple(f.shape) == (2, 128, 16, 24)
    assert feat.proj.kernel_size == (1, 1)
    # 1x1 conv + ReLU, computed by hand from the weights
    w, b = feat.proj.weight.detach()[:, :, 0, 0], feat.proj.bias
    ref = torch.einsum("oc,bchw->bohw", w, fused) + (0 if b is None else b.detach()[:, None, None])
    assert (ref < 0).any() and torch.allclose(f, ref.clamp(min=0), atol=1e-5)
    aux = FCNAuxHead(in_feature="res4", in_channels=512, num_classes=21, channels=256)
    out = aux({"res4": torch.randn(2, 512, 4, 6)})
    assert tuple(out.shape) == (2, 21, 4, 6)


def test_heads_from_config_read_the_paper_keys():
    from detectron2.config import get_cfg

    from dfr import add_dfr_config
    from dfr.modeling.heads import FeatureConsistencyHead, UperNetFusion, UperNetHead

    cfg = get_cfg()
    add_dfr_config(cfg)
    cfg.MODEL.UPERNET.CHANNELS = 8
    cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"  # Detectron2 default is GN; Base-DFR.yaml sets BN
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 5
    fusion = UperNetFusion(cfg, SWIN_B)
    assert fusion.output_shape().channels == 32
    assert UperNetHead(cfg, fusion.output_shape()).predictor.out_channels == 5
    assert FeatureConsistencyHead(cfg, fusion.output_shape()).proj.out_channels == 128

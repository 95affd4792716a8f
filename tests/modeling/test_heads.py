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


def _cbr(x, conv):
    """mmcv ConvModule by hand from a conv_bn_relu's tensors: conv (no bias), BN in eval mode
    (running statistics), ReLU."""
    sd = {k: v.detach() for k, v in conv.state_dict().items()}
    k = sd["weight"].shape[-1]
    y = torch.nn.functional.conv2d(x, sd["weight"], sd.get("bias"), padding=k // 2)
    n = conv.norm
    y = (y - sd["norm.running_mean"][:, None, None]) / torch.sqrt(
        sd["norm.running_var"][:, None, None] + n.eps)  # fmt: skip
    return torch.relu(y * sd["norm.weight"][:, None, None] + sd["norm.bias"][:, None, None])


def _up(x, size):
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _uper_reference(fusion, feats, levels, order=("res2", "res3", "res4", "res5")):
    """mmseg's UPerHead up to (without) fpn_bottleneck, written from its definition:
    psp = bottleneck(cat[x, up(ppm_s(x)) for s]); laterals (1x1) of the lower levels + psp;
    top-down: lateral[i-1] += up(lateral[i]); fpn 3x3 conv on every level but the top; every
    level upsampled to the finest input and concatenated (here: only `levels`)."""
    x = feats[order[-1]]
    pooled = [_up(_cbr(torch.nn.functional.adaptive_avg_pool2d(x, s), m[1]), x.shape[-2:])
              for s, m in zip((1, 2, 3, 6), fusion.ppm)]  # fmt: skip
    lat = {order[-1]: _cbr(torch.cat([x, *pooled], 1), fusion.ppm_bottleneck)}
    used = [f for f in order[:-1] if f in fusion.lateral_convs]
    for f in used:
        lat[f] = _cbr(feats[f], fusion.lateral_convs[f])
    chain = used + [order[-1]]
    for i in range(len(chain) - 1, 0, -1):
        lat[chain[i - 1]] = lat[chain[i - 1]] + _up(lat[chain[i]], lat[chain[i - 1]].shape[-2:])
    size = feats[order[0]].shape[-2:]
    outs = [_up(lat[f] if f == order[-1] else _cbr(lat[f], fusion.fpn_convs[f]), size)
            for f in levels]  # fmt: skip
    return torch.cat(outs, 1)


def _randomise_bn(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("levels", [["res2", "res3", "res4", "res5"], ["res3"], ["res4", "res5"]])
def test_fusion_equals_upernet_written_from_its_definition(levels):
    """The fused map against an independent functional UperNet (F.conv2d / BN by hand /
    bilinear, align_corners False) on the module's own weights, odd map sizes."""
    shapes = {k: ShapeSpec(channels=s.channels // 16, stride=s.stride) for k, s in SWIN_B.items()}
    fusion = _fusion(levels, channels=8, shapes=shapes)
    _randomise_bn(fusion)
    fusion.eval()
    feats = _features(shapes, h=4 * 19, w=4 * 26)  # res5 is 19/8 x 26/8 -> odd, non-divisible
    feats = {k: v[..., : -(i % 2) or None, :] for i, (k, v) in enumerate(feats.items())}
    with torch.no_grad():
        got = fusion(feats)
        want = _uper_reference(fusion, feats, levels)
    assert got.shape == want.shape == (2, 8 * len(levels), *feats["res2"].shape[-2:])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

"""DFRCriterion's wiring, checked by numbers: for every switch combination of Tables 4, 5 and 7
of "Dynamic Feature Regularized Loss for Weakly Supervised Semantic Segmentation" (the
configs/ablations/table{4,5,7}_*.yaml), one training step of a tiny model is run, its own
tensors are captured with forward hooks, and every loss of Eq. 1 is recomputed from them with
the public loss functions and the paper's constants. Also: σ3 of the opt-in
SIGMA_FEAT_RELATIVE is a local value, averaged over the processes under DDP."""
import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import CONFIGS

from dfr.modeling.losses import PairwiseParams

TABLE_YAMLS = sorted(p.stem for p in (CONFIGS / "ablations").glob("table[457]_row*.yaml"))

# The paper's constants (Sect. 3 and 4.2), written here rather than read from the model: the
# losses run on the stride-4 map with the area-pooled normalised image, r = 5, σ1 = 6, σ2 = 0.5,
# σ3 = 50 (Eq. 6, 13), positions in map pixels, γ = 0.98 (Eq. 7), λ1 = 1e-2, λ2 = 1e-3 (Eq. 1);
# the aux head of the Swin UperNet recipe weighs 0.4.
LOSS_STRIDE, RADIUS, SIGMA_XY, SIGMA_RGB, SIGMA_FEAT, POSITION_STRIDE = 4, 5, 6.0, 0.5, 50.0, 1.0
GAMMA, LAMBDA1, LAMBDA2, AUX_WEIGHT, BACKGROUND, IGNORE = 0.98, 1e-2, 1e-3, 0.4, 0, 255
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
CROP = (40, 56)
TINY = ["MODEL.SWIN.PRETRAINED", "", "MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", 8,
        "MODEL.SWIN.DEPTHS", [1, 1, 1, 1], "MODEL.SWIN.NUM_HEADS", [1, 1, 1, 1],
        "MODEL.SWIN.WINDOW_SIZE", 4, "MODEL.SWIN.DROP_PATH_RATE", 0.0,
        "MODEL.UPERNET.CHANNELS", 8, "MODEL.AUX_HEAD.CHANNELS", 8, "MODEL.DFR.FEAT_DIM", 4,
        "MODEL.SEM_SEG_HEAD.NORM", "BN", "MODEL.DEVICE", "cpu", "INPUT.CROP.SIZE", CROP]


def _cfg(name, *opts):
    from dfr.config import get_dfr_cfg

    return get_dfr_cfg(CONFIGS / "ablations" / f"{name}.yaml", [*TINY, *opts])


def _batch():
    """Two images, the second smaller than the crop (padded: labels 255, valid False there)."""
    g = torch.Generator().manual_seed(1)
    batch = []
    for h, w in (CROP, (33, 47)):
        label = torch.full((h, w), IGNORE, dtype=torch.long)
        label[5:9, 4:30], label[20:24, 10:40], label[12:16, 20:26] = 0, 1, 2
        batch.append({"image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
                      "sem_seg": label})  # fmt: skip
    return batch


def _hooked_step(cfg):
    """One training step; returns (losses, the step's tensors captured by forward hooks)."""
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    model = build_model(cfg).train()
    with torch.no_grad():  # confident predictions, so that M (γ = 0.98) labels some pixels
        model.sem_seg_head.predictor.weight.mul_(1000.0)  # initialised with std 0.01
    seen = {}

    def keep(name):
        return lambda module, inputs, output: seen.update({name: output.detach()})

    model.backbone.register_forward_pre_hook(
        lambda module, inputs: seen.update(image=inputs[0].detach()))
    model.fusion.register_forward_hook(keep("fused"))
    model.sem_seg_head.register_forward_hook(keep("logits"))
    if model.feat_head is not None:
        model.feat_head.register_forward_hook(keep("feats"))
    if model.aux_head is not None:
        model.aux_head.register_forward_hook(keep("aux_logits"))
    model.criterion.register_forward_pre_hook(
        lambda module, args: seen.update(labels=args[2], valid=args[3]))
    losses = model(_batch())
    return losses, seen, model


def _padded_batch(batch):
    """The normalised image, labels and valid mask of the step, built here from the batch:
    mmseg's Normalize, then Pad to the crop (0 on the image, 255 on the labels)."""
    image = torch.zeros(len(batch), 3, *CROP)
    labels = torch.full((len(batch), *CROP), IGNORE, dtype=torch.long)
    valid = torch.zeros(len(batch), *CROP, dtype=torch.bool)
    for i, x in enumerate(batch):
        h, w = x["sem_seg"].shape
        image[i, :, :h, :w] = (x["image"].float() - MEAN) / STD
        labels[i, :h, :w] = x["sem_seg"]
        valid[i, :h, :w] = True
    return image, labels, valid


def _expected_losses(cfg, seen):
    """Eq. 1 recomputed from the captured tensors with the public loss functions."""
    from dfr.modeling.losses import (confident_labels, dfr_loss, feature_distance_loss,
                                     feature_regularized_loss, partial_cross_entropy)

    d = cfg.MODEL.DFR  # only the switches of the table row are read from the config
    image, labels, valid = _padded_batch(_batch())
    assert torch.equal(seen["image"], image)
    assert torch.equal(seen["labels"], labels) and torch.equal(seen["valid"], valid)

    def up(x, size):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def nearest(x, size):  # sample each output pixel's centre
        return F.interpolate(x[:, None].float(), size=size, mode="nearest-exact")[:, 0]

    out = {"loss_pce": partial_cross_entropy(up(seen["logits"], CROP), labels, IGNORE)}
    if "aux_logits" in seen:
        out["loss_aux"] = AUX_WEIGHT * partial_cross_entropy(up(seen["aux_logits"], CROP),
                                                             labels, IGNORE)
    size = (math.ceil(CROP[0] / LOSS_STRIDE), math.ceil(CROP[1] / LOSS_STRIDE))
    img_s = F.adaptive_avg_pool2d(image, size)  # stride-4 area-pooled normalised image
    valid_s = nearest(valid, size).bool()
    scribbles = nearest(labels, size).long()
    probs = up(seen["logits"], size).softmax(1)
    feats = up(seen["feats"], size) if "feats" in seen else None
    kernel = dict(radius=RADIUS, sigma_xy=SIGMA_XY, sigma_rgb=SIGMA_RGB, stride=POSITION_STRIDE)
    if d.USE_DFR:  # Eq. 4-6
        out["loss_dfr"] = LAMBDA1 * dfr_loss(probs, img_s, feats, valid_s,
                                             sigma_feat=SIGMA_FEAT, use_xy=d.KERNEL_XY,
                                             use_rgb=d.KERNEL_RGB, use_feat=d.KERNEL_FEAT,
                                             **kernel)  # fmt: skip
    m = confident_labels(probs, GAMMA, IGNORE)  # Eq. 7
    target = {"M": m, "scribble": scribbles,
              "both": torch.where(scribbles != IGNORE, scribbles, m)}[d.FEAT_SUPERVISION]
    target = target.masked_fill(~valid_s, IGNORE)
    if d.USE_FD:  # Eq. 8-11
        out["loss_fd"] = LAMBDA2 * feature_distance_loss(feats, target, valid_s, radius=RADIUS,
                                                         background=BACKGROUND)
    if d.USE_FR:  # Eq. 12-13
        out["loss_fr"] = LAMBDA2 * feature_regularized_loss(feats, img_s, target, valid_s,
                                                            pairs="RA", **kernel)
    return out, m


@pytest.mark.parametrize("name", TABLE_YAMLS)
def test_every_loss_of_a_training_step_matches_the_equations(name):
    cfg = _cfg(name)
    losses, seen, model = _hooked_step(cfg)
    expected, m = _expected_losses(cfg, seen)
    assert set(losses) == set(expected)
    # a fair comparison: some pixels are confident, some are not, and every term is non-zero
    assert 0.05 < float((m != IGNORE).float().mean()) < 0.95
    for key, ref in expected.items():
        got, ref = losses[key].item(), ref.item()
        assert ref > 0, key
        assert abs(got - ref) <= 1e-6 and abs(got - ref) <= 1e-5 * ref, (key, got, ref)
    # the feature head is there exactly when a term reads F (Table 5 removes it otherwise)
    d = cfg.MODEL.DFR
    needs_f = (d.USE_DFR and d.KERNEL_FEAT) or d.USE_FD or d.USE_FR
    assert (model.feat_head is not None) == bool(needs_f)


def test_all_three_tables_are_covered():
    tables = {n.split("_")[0] for n in TABLE_YAMLS}
    assert tables == {"table4", "table5", "table7"} and len(TABLE_YAMLS) == 11, TABLE_YAMLS


def test_criterion_holds_no_state_and_the_segmentor_few_arguments():
    from dfr.modeling import DFRSegmentor
    from dfr.modeling.criterion import DFRCriterion

    cfg = _cfg("table4_row4_full")
    _, _, model = _hooked_step(cfg)
    assert list(model.criterion.state_dict()) == []  # checkpoint keys do not depend on it
    assert not any(k.startswith("criterion.") for k in model.state_dict())
    crit = DFRCriterion(cfg)
    pw = crit.pairwise
    assert (pw.sigma_xy, pw.sigma_rgb, pw.sigma_feat, pw.radius) == (
        SIGMA_XY, SIGMA_RGB, SIGMA_FEAT, RADIUS)
    args = [p for p in inspect.signature(DFRCriterion.__init__).parameters if p != "self"]
    assert len(args) <= 12, args
    assert (crit.lambda_dfr, crit.lambda_feat, crit.gamma) == (LAMBDA1, LAMBDA2, GAMMA)
    args = [p for p in inspect.signature(DFRSegmentor.__init__).parameters if p != "self"]
    assert len(args) <= 12, args


def test_relative_sigma_feat_is_local_and_falls_back_without_pairs():
    from dfr.modeling.criterion import DFRCriterion
    from dfr.modeling.losses import window_feature_distance

    crit = DFRCriterion(sigma_feat_relative=2.0, pairwise=PairwiseParams(radius=2))
    feats = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(2, 6, 7, dtype=torch.bool)
    got = float(crit.relative_sigma_feat(feats, valid))
    assert got == pytest.approx(2.0 * float(window_feature_distance(feats, valid, 2)), rel=1e-6)
    assert crit.pairwise.sigma_feat == 50.0  # never written back
    assert float(crit.relative_sigma_feat(feats, torch.zeros_like(valid))) == 50.0  # no pair


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    from dfr.modeling.criterion import DFRCriterion

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        feats, valid = _rank_inputs(rank)
        crit = DFRCriterion(sigma_feat_relative=2.0, pairwise=PairwiseParams(radius=2))
        sigma = crit.relative_sigma_feat(feats, valid)
        torch.save(float(sigma), f"{out_dir}/sigma{rank}.pt")
    finally:
        dist.destroy_process_group()


def _rank_inputs(rank):
    g = torch.Generator().manual_seed(10 + rank)
    feats = torch.rand(1, 3, 5 + rank, 6, generator=g) * (1 + 3 * rank)  # different scales
    valid = torch.rand(1, 5 + rank, 6, generator=g) > 0.3
    return feats, valid


def test_relative_sigma_feat_is_averaged_over_ddp_processes(tmp_path):
    """Two gloo processes with different features: both use 2 x the mean window feature
    distance over the pairs of both batches."""
    import torch.multiprocessing as mp

    from dfr.modeling.losses import window_feature_distance_sum

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    sums = [window_feature_distance_sum(*_rank_inputs(r), radius=2) for r in range(2)]
    pooled = 2.0 * float(sum(n for n, _ in sums) / sum(c for _, c in sums))
    local = [2.0 * float(n / c) for n, c in sums]
    got = [torch.load(tmp_path / f"sigma{r}.pt") for r in range(2)]
    assert got[0] == pytest.approx(pooled, rel=1e-6) and got[1] == pytest.approx(pooled, rel=1e-6)
    assert abs(local[0] - local[1]) > 0.1 * pooled  # the processes alone would disagree


def test_m_threshold_is_strict_at_gamma():
    """Eq. 7: M labels a pixel only when max_c P_c > γ; exactly at γ it stays unlabeled."""
    from dfr.modeling.losses import confident_labels

    probs = torch.tensor([[0.75, 0.25], [0.7500001, 0.2499999], [0.25, 0.75]]).T
    m = confident_labels(probs.reshape(1, 2, 1, 3), gamma=0.75, ignore_index=IGNORE)
    assert m.flatten().tolist() == [IGNORE, 0, IGNORE]

"""Feature-branch diagnostics (dfr.modeling.losses.diagnostics): hand-counted pair
sets, hand-computed feature factors, a brute-force loop over every window pair, and the
`diag/*` keys in metrics.json of a real training run."""
import math

import torch
from helpers import REPO, metrics_rows, register_tiny, setup_cfg

from dfr.modeling.losses import DIAGNOSTIC_KEYS, feature_branch_diagnostics, window_feature_distance


def _row(labels, feats=None):
    """One image of h=1 row: labels (w,), feats (d, w) -> (1, ., 1, w) tensors."""
    lab = torch.tensor(labels).view(1, 1, -1)
    if feats is None:
        return lab, None
    return lab, torch.tensor(feats, dtype=torch.float64).view(1, len(feats), 1, len(labels))


def test_pair_counts_by_hand():
    # labels 0 0 1 1 in one row, r = 3 (every pixel sees every other): 12 ordered pairs;
    # A+bg = {(0,1),(1,0)}, A+fg = {(2,3),(3,2)}, A- = the 8 others.
    lab, _ = _row([0, 0, 1, 1])
    probs = torch.full((1, 2, 1, 4), 0.5, dtype=torch.float64)
    valid = torch.ones(1, 1, 4, dtype=torch.bool)
    d = feature_branch_diagnostics(probs, None, None, lab, lab, valid, radius=3, use_rgb=False)
    assert (d["pairs_bg"], d["pairs_fg"], d["pairs_neg"]) == (2, 2, 8)
    # r = 1: only neighbours: (0,1) bg, (1,2) neg, (2,3) fg, each in both orders
    d = feature_branch_diagnostics(probs, None, None, lab, lab, valid, radius=1, use_rgb=False)
    assert (d["pairs_bg"], d["pairs_fg"], d["pairs_neg"]) == (2, 2, 2)
    # an unlabeled pixel (255) and an invalid one leave their pairs out of every set
    lab2, _ = _row([0, 255, 1, 1])
    valid2 = torch.tensor([[[True, True, True, False]]])
    d = feature_branch_diagnostics(probs, None, None, lab2, lab2, valid2, radius=3,
                                   use_rgb=False)
    assert (d["pairs_bg"], d["pairs_fg"], d["pairs_neg"]) == (0, 0, 2)
    assert "feat_norm" not in d  # no feature head: no feature keys


def test_m_fraction_and_target_default_to_m():
    # confidences 0.99, 0.97, 0.99, 0.5 at γ = 0.98: M labels pixels 0 and 2 (classes 1, 0)
    p1 = torch.tensor([0.99, 0.97, 0.01, 0.5], dtype=torch.float64)
    probs = torch.stack([1 - p1, p1]).view(1, 2, 1, 4)
    valid = torch.ones(1, 1, 4, dtype=torch.bool)
    lab, _ = _row([255] * 4)
    d = feature_branch_diagnostics(probs, None, None, lab, None, valid, radius=3, use_rgb=False)
    assert d["m_frac"] == 0.5
    assert (d["pairs_bg"], d["pairs_fg"], d["pairs_neg"]) == (0, 0, 2)  # M: 1 at 0, 0 at 2
    valid[0, 0, 3] = False  # an invalid pixel leaves the denominator
    d = feature_branch_diagnostics(probs, None, None, lab, None, valid, radius=3, use_rgb=False)
    assert abs(d["m_frac"] - 2 / 3) < 1e-12


def test_feature_factor_dead_channels_and_norm_by_hand():
    # F(k) = (3k, 0, 4k): channel 1 never positive (dead); ‖F(k)‖ = 5k; ‖F(k) - F(l)‖ = 5|k-l|
    w, sigma = 4, 5.0
    lab, f = _row([1, 1, 2, 255], [[3.0 * k for k in range(w)], [0.0] * w,
                                   [4.0 * k for k in range(w)]])
    probs = torch.full((1, 3, 1, w), 1 / 3, dtype=torch.float64)
    valid = torch.ones(1, 1, w, dtype=torch.bool)
    d = feature_branch_diagnostics(probs, None, f, lab, lab, valid, radius=3, sigma_feat=sigma,
                                   use_xy=False, use_rgb=False)
    fac = [math.exp(-(5.0 * t) ** 2 / (2 * sigma ** 2)) for t in range(4)]
    assert abs(d["feat_dead_frac"] - 1 / 3) < 1e-12
    assert abs(d["feat_norm"] - 5 * (0 + 1 + 2 + 3) / 4) < 1e-12
    # scribble pairs: same class (0,1) at distance 1; different (0,2) at 2 and (1,2) at 1
    assert abs(d["ffac_same"] - fac[1]) < 1e-12
    assert abs(d["ffac_diff"] - (fac[2] + fac[1]) / 2) < 1e-12
    # all 12 ordered pairs: distances 1 (x6), 2 (x4), 3 (x2); no XY / RGB term: K0 = 1
    assert d["k_nofeat_mean"] == 1.0
    assert abs(d["k_mean"] - (6 * fac[1] + 4 * fac[2] + 2 * fac[3]) / 12) < 1e-12
    assert abs(d["feat_dist"] - 5 * (6 * 1 + 4 * 2 + 2 * 3) / 12) < 1e-12
    assert abs(float(window_feature_distance(f, valid, 3)) - d["feat_dist"]) < 1e-12


def _brute(probs, image, feats, scr, target, valid, r, sxy, srgb, sf, gamma=0.98, bg=0):
    b, _, h, w = probs.shape
    conf, arg = probs.max(1)
    m = torch.where(conf > gamma, arg, torch.full_like(arg, 255))
    tgt = m if target is None else target
    c = dict(bg=0, fg=0, neg=0, n=0, k=0.0, k0=0.0, dist=0.0, same=0.0, ns=0, diff=0.0, nd=0)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        yy, xx = y + dy, x + dx
                        if (dy, dx) == (0, 0) or not (0 <= yy < h and 0 <= xx < w):
                            continue
                        if not (valid[n, y, x] and valid[n, yy, xx]):
                            continue
                        ta, tb = int(tgt[n, y, x]), int(tgt[n, yy, xx])
                        if ta != 255 and tb != 255:
                            key = "neg" if ta != tb else ("bg" if ta == bg else "fg")
                            c[key] += 1
                        di2 = float((image[n, :, y, x] - image[n, :, yy, xx]).square().sum())
                        k0 = math.exp(-(dx * dx + dy * dy) / (2 * sxy ** 2) - di2 / (2 * srgb ** 2))
                        d2 = float((feats[n, :, y, x] - feats[n, :, yy, xx]).square().sum())
                        fac = math.exp(-d2 / (2 * sf ** 2))
                        c["n"] += 1
                        c["k0"] += k0
                        c["k"] += k0 * fac
                        c["dist"] += math.sqrt(d2)
                        sa, sb = int(scr[n, y, x]), int(scr[n, yy, xx])
                        if sa != 255 and sb != 255:
                            if sa == sb:
                                c["same"] += fac
                                c["ns"] += 1
                            else:
                                c["diff"] += fac
                                c["nd"] += 1
    return c


def test_matches_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    b, C, d, h, w, r = 2, 3, 4, 5, 7, 2
    probs = (torch.randn(b, C, h, w, generator=g, dtype=torch.float64) * 4).softmax(1)
    image = torch.randn(b, 3, h, w, generator=g, dtype=torch.float64) * 0.5
    feats = torch.randn(b, d, h, w, generator=g, dtype=torch.float64).mul(2).relu()
    scr = torch.randint(0, 3, (b, h, w), generator=g)
    scr[torch.rand(b, h, w, generator=g) < 0.5] = 255
    valid = torch.rand(b, h, w, generator=g) > 0.2
    kw = dict(radius=r, sigma_xy=2.0, sigma_rgb=0.7, sigma_feat=1.5)
    for target in (None, scr):
        got = feature_branch_diagnostics(probs, image, feats, scr, target, valid, **kw)
        c = _brute(probs, image, feats, scr, target, valid, r, 2.0, 0.7, 1.5)
        assert (got["pairs_bg"], got["pairs_fg"], got["pairs_neg"]) == (c["bg"], c["fg"],
                                                                         c["neg"])
        for key, ref in (("k_mean", c["k"] / c["n"]), ("k_nofeat_mean", c["k0"] / c["n"]),
                         ("feat_dist", c["dist"] / c["n"]), ("ffac_same", c["same"] / c["ns"]),
                         ("ffac_diff", c["diff"] / c["nd"])):
            assert abs(got[key] - ref) < 1e-10 * max(1.0, abs(ref)), key
    assert set(got) == set(DIAGNOSTIC_KEYS)


def test_training_run_writes_diagnostics_to_metrics_json(tmp_path):
    from dfr.engine import Trainer

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix, "SOLVER.MAX_ITER", 3, "MODEL.DFR.DIAG_PERIOD", 2)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    for k in DIAGNOSTIC_KEYS:  # put at iter % DIAG_PERIOD == 0 only
        assert [it for _, it in trainer.storage.history(f"diag/{k}").values()] == [0, 2], k
    rows = metrics_rows(tmp_path / "run")  # the writers run at the last iteration here
    assert {f"diag/{k}" for k in DIAGNOSTIC_KEYS} <= set(rows[2]), sorted(rows[2])
    r0 = rows[2]
    assert 0.0 <= r0["diag/m_frac"] <= 1.0 and 0.0 <= r0["diag/feat_dead_frac"] <= 1.0
    assert 0.0 < r0["diag/k_mean"] <= r0["diag/k_nofeat_mean"] <= 1.0
    # tools/plot_metrics.py draws them (one panel per key)
    import importlib.util

    spec = importlib.util.spec_from_file_location("plot_metrics", REPO / "tools/plot_metrics.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    keys = tool.plot([tmp_path / "run"], ["run"], None, tmp_path / "m.png")
    assert {f"diag/{k}" for k in DIAGNOSTIC_KEYS} <= set(keys) and "loss_fd" in keys
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def _small_model(*opts):
    from detectron2.modeling import build_model

    from dfr.config import get_dfr_cfg

    cfg = get_dfr_cfg(REPO / "projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml",
                      ["MODEL.SWIN.EMBED_DIM", 16, "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4],
                       "MODEL.SWIN.DROP_PATH_RATE", 0.0, "MODEL.DFR.GAMMA", 0.0,
                       "MODEL.DFR.DIAG_PERIOD", 0, "INPUT.CROP.SIZE", (64, 64), *opts])
    torch.manual_seed(0)
    return build_model(cfg).train()


def _batch64():
    g = torch.Generator().manual_seed(0)
    lab = torch.full((64, 64), 255, dtype=torch.long)
    lab[4:8, 4:60], lab[20:24, 8:56], lab[52:56, 10:30] = 0, 1, 2
    return [{"image": torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8),
             "sem_seg": lab} for _ in range(2)]


def test_feat_detach_fused_keeps_lfd_lfr_out_of_the_fused_map():
    for detach in (False, True):
        model = _small_model("MODEL.DFR.FEAT_DETACH_FUSED", detach)
        losses = model(_batch64())
        fusion = [p for p in model.fusion.parameters() if p.requires_grad]
        g = torch.autograd.grad(losses["loss_fd"] + losses["loss_fr"],
                                fusion + [model.feat_head.proj.weight], allow_unused=True)
        into_fusion = sum(float(x.abs().sum()) for x in g[:-1] if x is not None)
        assert (into_fusion == 0) == detach, detach
        assert float(g[-1].abs().sum()) > 0  # the head itself is trained either way


def test_sigma_feat_relative_follows_the_window_feature_distance():
    from dfr.modeling.losses import dfr_loss

    model = _small_model("MODEL.DFR.SIGMA_FEAT_RELATIVE", 2.0)
    kept = {}
    model.feat_head.register_forward_hook(lambda m, i, o: kept.update(f=o.detach()))
    model.criterion.register_forward_pre_hook(lambda m, args: kept.update(args=args))
    losses = model(_batch64())
    crit = model.criterion
    valid = torch.ones(2, 16, 16, dtype=torch.bool)  # 64 px crops: the loss map is 16 x 16
    dist = float(window_feature_distance(kept["f"], valid, crit.pairwise.radius))
    maps = crit.loss_maps(*kept["args"])
    assert dist > 0 and abs(float(maps.sigma_feat) - 2.0 * dist) < 1e-4 * dist
    # the step's Ldfr used that σ3; the module keeps its configured SIGMA_FEAT
    ref = crit.lambda_dfr * dfr_loss(maps.probs, maps.image, maps.feats, maps.valid,
                                     sigma_feat=maps.sigma_feat)
    assert abs(losses["loss_dfr"].item() - ref.item()) < 1e-7
    assert crit.pairwise.sigma_feat == 50.0


def test_diagnostics_of_a_training_step_equal_the_brute_force_on_its_own_tensors():
    """Every diag/* scalar that a training step puts equals a float64 loop over the window
    pairs of that step's own loss maps, with the config's r, σ1, σ2, σ3 (the paper's 5, 6,
    0.5, 50): a diagnostic computed with another radius or kernel fails."""
    from detectron2.utils.events import EventStorage

    model = _small_model("MODEL.DFR.DIAG_PERIOD", 1)
    crit = model.criterion
    kept = {}
    orig = crit.loss_maps
    crit.loss_maps = lambda *a: kept.setdefault("maps", orig(*a))
    with EventStorage(0) as storage:
        model(_batch64())
        got = {k[len("diag/"):]: v[0] for k, v in storage.latest().items()
               if k.startswith("diag/")}
    maps = kept["maps"]
    f = maps.feats.detach().double()
    c = _brute(maps.probs.detach().double(), maps.image.double(), f, maps.scribbles,
               maps.target, maps.valid, 5, 6.0, 0.5, 50.0, gamma=crit.gamma)
    want = {"pairs_bg": c["bg"], "pairs_fg": c["fg"], "pairs_neg": c["neg"],
            "k_mean": c["k"] / c["n"], "k_nofeat_mean": c["k0"] / c["n"],
            "feat_dist": c["dist"] / c["n"]}
    if c["ns"]:
        want["ffac_same"] = c["same"] / c["ns"]
    if c["nd"]:
        want["ffac_diff"] = c["diff"] / c["nd"]
    for k, v in want.items():
        assert abs(got[k] - v) <= 1e-5 * max(1.0, abs(v)), (k, got[k], v)

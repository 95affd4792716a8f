"""Every YAML under projects/DFR/configs merges and builds its model; ablation YAMLs set what
their table row says. Swin-B/L models are built on the `meta` device (shapes, no memory)."""
import re

import pytest
import torch
from helpers import CONFIGS, TINY_TRAIN_OPTS

ALL_YAMLS = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))


def _cfg(rel, *opts):
    from detectron2.config import get_cfg

    from dfr import add_dfr_config

    cfg = get_cfg()
    add_dfr_config(cfg)
    cfg.merge_from_file(str(CONFIGS / rel))
    cfg.merge_from_list(["MODEL.SWIN.PRETRAINED", "", *opts])
    return cfg


@pytest.fixture
def meta_build():
    """Build on the meta device (dfr.utils.meta_device)."""

    def build(cfg):
        from detectron2.modeling import META_ARCH_REGISTRY

        from dfr.utils import meta_device

        with meta_device():
            return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)

    return build


def test_config_tree_is_complete():
    assert "voc/dfr_swin_base_bs16_40k.yaml" in ALL_YAMLS
    assert "synthetic/dfr_swin_tiny_synthetic_cpu.yaml" in ALL_YAMLS
    for size in ("tiny", "small", "large"):
        assert f"voc/dfr_swin_{size}_bs16_40k.yaml" in ALL_YAMLS
    assert {"context/dfr_swin_base_context59_bs16_40k.yaml",
            "context/dfr_swin_base_context60_bs16_40k.yaml"} <= set(ALL_YAMLS)
    rows = [y for y in ALL_YAMLS if y.startswith("ablations/")]
    # Tables 4, 5, 6, 7 have 4 + 4 + 9 + 3 rows
    for table, n in ((4, 4), (5, 4), (6, 9), (7, 3)):
        assert len([r for r in rows if f"/table{table}_row" in r]) == n, table


@pytest.mark.parametrize("rel", ALL_YAMLS)
def test_every_yaml_builds_its_model(rel, meta_build):
    from dfr.modeling.meta_arch import DFRSegmentor

    cfg = _cfg(rel)
    model = meta_build(cfg).eval()
    assert isinstance(model, DFRSegmentor)
    with torch.no_grad():
        out = model.forward_features(torch.zeros(1, 3, 64, 96, device="meta"), with_feats=True)
    k = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    levels = len(cfg.MODEL.UPERNET.FUSION_LEVELS)
    assert tuple(out["fused"].shape) == (1, cfg.MODEL.UPERNET.CHANNELS * levels, 16, 24)
    assert tuple(out["logits"].shape) == (1, k, 16, 24)
    d = cfg.MODEL.DFR
    needs_feat = (d.USE_DFR and d.KERNEL_FEAT) or d.USE_FD or d.USE_FR
    assert (model.feat_head is not None) == needs_feat
    if needs_feat:
        assert tuple(out["feats"].shape) == (1, d.FEAT_DIM, 16, 24)
    assert (model.aux_head is not None) == cfg.MODEL.AUX_HEAD.ENABLED


def test_swin_base_parameter_count_matches_timm(meta_build):
    import timm

    model = meta_build(_cfg("voc/dfr_swin_base_bs16_40k.yaml"))
    with torch.device("meta"):
        ref = timm.create_model("swin_base_patch4_window12_384", features_only=True)
    n_ref = sum(p.numel() for p in ref.parameters())
    assert n_ref == 86_876_536
    assert sum(p.numel() for p in model.backbone.swin.parameters()) == n_ref
    # + one LayerNorm per output (128 + 256 + 512 + 1024 channels, weight and bias)
    assert sum(p.numel() for p in model.backbone.parameters()) == n_ref + 2 * 1920


@pytest.mark.parametrize(
    "rel,size,window",
    [("voc/dfr_swin_tiny_bs16_40k.yaml", "T", 7), ("voc/dfr_swin_small_bs16_40k.yaml", "S", 7),
     ("voc/dfr_swin_base_bs16_40k.yaml", "B", 12), ("voc/dfr_swin_large_bs16_40k.yaml", "L", 12)],
)
def test_size_variants_match_timm_models(rel, size, window, meta_build):
    import timm

    names = {"T": "swin_tiny_patch4_window7_224", "S": "swin_small_patch4_window7_224",
             "B": "swin_base_patch4_window12_384", "L": "swin_large_patch4_window12_384"}
    cfg = _cfg(rel)
    assert cfg.MODEL.SWIN.SIZE == size and cfg.MODEL.SWIN.WINDOW_SIZE == window
    model = meta_build(cfg)
    with torch.device("meta"):
        ref = timm.create_model(names[size], features_only=True)
    assert sum(p.numel() for p in model.backbone.swin.parameters()) == sum(
        p.numel() for p in ref.parameters()
    )


def test_paper_recipe_values():
    cfg = _cfg("voc/dfr_swin_base_bs16_40k.yaml")
    assert cfg.MODEL.SWIN.SIZE == "B" and cfg.MODEL.SWIN.WINDOW_SIZE == 12
    assert cfg.MODEL.SWIN.DROP_PATH_RATE == pytest.approx(0.3)
    assert (cfg.MODEL.DFR.LAMBDA_DFR, cfg.MODEL.DFR.LAMBDA_FEAT) == (0.01, 0.001)
    assert cfg.MODEL.DFR.RADIUS == 5 and cfg.MODEL.DFR.GAMMA == pytest.approx(0.98)
    assert cfg.SOLVER.BASE_LR == pytest.approx(3e-5) and cfg.SOLVER.WEIGHT_DECAY == 0.01
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.MAX_ITER == 40000
    assert tuple(cfg.INPUT.CROP.SIZE) == (512, 512)
    assert cfg.MODEL.UPERNET.CHANNELS * len(cfg.MODEL.UPERNET.FUSION_LEVELS) == 2048
    assert cfg.MODEL.AUX_HEAD.LOSS_WEIGHT == pytest.approx(0.4)
    for n in (59, 60):
        ctx = _cfg(f"context/dfr_swin_base_context{n}_bs16_40k.yaml")
        assert ctx.MODEL.SEM_SEG_HEAD.NUM_CLASSES == n
        assert ctx.DATASETS.TRAIN == (f"context_{n}_train_scribble",)



def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + k + ".")
        else:
            yield prefix + k


def _value(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def restated_keys(path):
    """Keys a YAML sets to the value it already inherits: from its _BASE_ chain, or, in a
    YAML without _BASE_, DFR's own keys at their dfr/config.py default (Detectron2's keys may
    name the recipe there even where it equals Detectron2's default)."""
    import yaml
    from detectron2.config import get_cfg

    from dfr.config import get_dfr_cfg

    raw = yaml.safe_load(path.read_text())
    base = raw.pop("_BASE_", None)
    inherited = get_dfr_cfg(path.parent / base if base else None, cpu_fallback=False)
    merged = get_dfr_cfg(path, cpu_fallback=False)
    keys = list(_leaves(raw))
    if base is None:
        d2 = get_cfg()
        keys = [k for k in keys if not _has(d2, k)]
    return [k for k in keys if _value(merged, k) == _value(inherited, k)]


def _has(cfg, key):
    try:
        _value(cfg, key)
        return True
    except KeyError:
        return False


# The template names the keys a user edits (marked CHANGE), whatever they inherit.
TEMPLATES = {"custom/dfr_swin_tiny_custom.yaml"}


@pytest.mark.parametrize("rel", [r for r in ALL_YAMLS if r not in TEMPLATES])
def test_yaml_sets_only_what_it_changes(rel):
    assert restated_keys(CONFIGS / rel) == [], f"{rel} restates inherited values"


def test_restated_keys_are_found(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f'_BASE_: "{CONFIGS / "voc/dfr_swin_base_bs16_40k.yaml"}"\n'
                     "MODEL:\n  SWIN:\n    SIZE: \"B\"\n    WINDOW_SIZE: 7\n"
                     "  SEM_SEG_HEAD:\n    NUM_CLASSES: 21\n")  # fmt: skip
    assert restated_keys(child) == ["MODEL.SWIN.SIZE", "MODEL.SEM_SEG_HEAD.NUM_CLASSES"]
    top = tmp_path / "top.yaml"
    top.write_text("MODEL:\n  DFR:\n    GAMMA: 0.98\n    RADIUS: 3\nSOLVER:\n  MAX_ITER: 40000\n")
    assert restated_keys(top) == ["MODEL.DFR.GAMMA"]


def _base_chain(rel):
    import yaml

    path, chain = CONFIGS / rel, []
    while (base := yaml.safe_load(path.read_text()).get("_BASE_")) is not None:
        path = (path.parent / base).resolve()
        chain.append(path.relative_to(CONFIGS).as_posix())
    return chain


@pytest.mark.parametrize("rel", ALL_YAMLS)
def test_real_scribble_configs_do_not_inherit_from_simulated_ones(rel):
    """A config trained on released or hand-drawn scribbles is the base of its simulated
    variant, not the other way round."""
    if "_sim_" in " ".join(_cfg(rel).DATASETS.TRAIN):
        return
    assert not [b for b in _base_chain(rel) if "_sim_" in b], _base_chain(rel)
    if rel.startswith(("ade20k/", "cityscapes/")):
        assert _base_chain(rel)[0] == "voc/dfr_swin_base_bs16_40k.yaml"

ALL = ["res2", "res3", "res4", "res5"]
# file -> (paper mIoU, expected MODEL.DFR / UPERNET values)
ABLATIONS = {
    "table4_row1_pce": (68.9, dict(USE_DFR=False, USE_FD=False, USE_FR=False)),
    "table4_row2_pce_dfr": (81.0, dict(USE_DFR=True, USE_FD=False, USE_FR=False)),
    "table4_row3_pce_dfr_fd": (81.1, dict(USE_DFR=True, USE_FD=True, USE_FR=False)),
    "table4_row4_full": (81.5, dict(USE_DFR=True, USE_FD=True, USE_FR=True)),
    "table5_row1_xy": (72.8, dict(KERNEL_XY=True, KERNEL_RGB=False, KERNEL_FEAT=False,
                                  USE_FD=False, USE_FR=False)),
    "table5_row2_xy_rgb": (80.8, dict(KERNEL_RGB=True, KERNEL_FEAT=False, USE_FD=False)),
    "table5_row3_xy_feat": (74.9, dict(KERNEL_RGB=False, KERNEL_FEAT=True, USE_FD=True)),
    "table5_row4_xy_rgb_feat": (81.5, dict(KERNEL_XY=True, KERNEL_RGB=True, KERNEL_FEAT=True)),
    "table6_row1_block1": (81.1, dict(FUSION_LEVELS=["res2"])),
    "table6_row2_block2": (81.1, dict(FUSION_LEVELS=["res3"])),
    "table6_row3_block3": (81.3, dict(FUSION_LEVELS=["res4"])),
    "table6_row4_block4": (81.3, dict(FUSION_LEVELS=["res5"])),
    "table6_row5_block12": (81.2, dict(FUSION_LEVELS=["res2", "res3"])),
    "table6_row6_block34": (80.9, dict(FUSION_LEVELS=["res4", "res5"])),
    "table6_row7_block123": (80.8, dict(FUSION_LEVELS=["res2", "res3", "res4"])),
    "table6_row8_block234": (80.5, dict(FUSION_LEVELS=["res3", "res4", "res5"])),
    "table6_row9_block1234": (81.5, dict(FUSION_LEVELS=ALL)),
    "table7_row1_scribble": (80.6, dict(FEAT_SUPERVISION="scribble")),
    "table7_row2_m": (81.5, dict(FEAT_SUPERVISION="M")),
    "table7_row3_both": (81.1, dict(FEAT_SUPERVISION="both")),
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_yaml_matches_its_table_row(name):
    miou, expected = ABLATIONS[name]
    rel = f"ablations/{name}.yaml"
    text = (CONFIGS / rel).read_text()
    table, row = re.match(r"table(\d)_row(\d)", name).groups()
    assert f"# Table {table} row {row}" in text.splitlines()[0]
    assert f"Paper: {miou} mIoU" in text
    cfg = _cfg(rel)
    for key, value in expected.items():
        node = cfg.MODEL.UPERNET if key == "FUSION_LEVELS" else cfg.MODEL.DFR
        assert node[key] == value, key
    assert cfg.MODEL.SWIN.SIZE == "B" and cfg.SOLVER.MAX_ITER == 40000  # over the paper recipe


@pytest.mark.parametrize("rel", ALL_YAMLS)
def test_every_yaml_gives_every_trainable_parameter_a_gradient(rel):
    """DistributedDataParallel without find_unused_parameters needs this: one training step of
    each shipped YAML (its heads, losses and fusion levels; tiny widths) reaches every
    trainable parameter. Table 6 once built FPN convs its fused map never used."""
    from detectron2.modeling import build_model

    cfg = _cfg(rel, *TINY_TRAIN_OPTS)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(1)
    batch = []
    for h, w in ((40, 56), (33, 47)):  # the second is padded to the crop after normalising
        label = torch.full((h, w), 255, dtype=torch.long)
        label[5:9, 4:30], label[20:24, 10:40] = 0, 1
        label[12:16, 20:26] = 2
        batch.append({"image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
                      "sem_seg": label})  # fmt: skip
    if cfg.MODEL.DFR.FEAT_SUPERVISION != "scribble":
        cfg.defrost()
    model.criterion.gamma = 0.0  # every pixel confident: M covers the image, A+ and A- non-empty
    losses = model(batch)
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == [], missing

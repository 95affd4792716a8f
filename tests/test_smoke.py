"""Foundation: the package imports, registers and builds configs the Detectron2 way."""
import pytest
from helpers import CONFIGS


def test_add_dfr_config_registers_what_the_base_config_names():
    from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY

    cfg = _cfg()  # add_dfr_config registers (in a fresh interpreter: test_imports.py)
    from dfr.modeling.heads import DFR_SEM_SEG_HEADS_REGISTRY
    from dfr.modeling.meta_arch import DFRSegmentor

    cfg.merge_from_file(str(CONFIGS / "Base-DFR.yaml"))
    assert META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE) is DFRSegmentor
    for reg, name in ((BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME),
                      (DFR_SEM_SEG_HEADS_REGISTRY, cfg.MODEL.SEM_SEG_HEAD.NAME)):  # fmt: skip
        assert reg.get(name).__module__.startswith("dfr.modeling."), name
    # Detectron2's sem-seg head registry is for heads of its (features, targets) ->
    # (results, losses) interface: none of DFR's heads is registered there
    assert not any(c.__module__.startswith("dfr.") for _, c in SEM_SEG_HEADS_REGISTRY)


def test_add_dfr_config_defaults_are_the_paper_values_and_version_matches_setup():
    import re

    import dfr

    d = _cfg().MODEL.DFR  # bare get_cfg() + add_dfr_config, no YAML
    assert (d.LAMBDA_DFR, d.LAMBDA_FEAT, d.GAMMA) == (1e-2, 1e-3, 0.98)  # λ1, λ2, γ
    assert (d.RADIUS, d.SIGMA_XY, d.SIGMA_RGB, d.SIGMA_FEAT) == (5, 6.0, 0.5, 50.0)  # r, σ1-3
    setup_py = (CONFIGS.parents[2] / "setup.py").read_text()
    assert re.search(r'version="([^"]+)"', setup_py).group(1) == dfr.__version__


def _cfg():
    from detectron2.config import get_cfg

    from dfr import add_dfr_config

    cfg = get_cfg()
    add_dfr_config(cfg)
    return cfg


def test_base_config_merges_with_paper_values():
    cfg = _cfg()
    cfg.merge_from_file(str(CONFIGS / "Base-DFR.yaml"))
    assert cfg.MODEL.META_ARCHITECTURE == "DFRSegmentor"
    assert cfg.MODEL.DFR.LAMBDA_DFR == pytest.approx(1e-2)
    assert cfg.MODEL.DFR.LAMBDA_FEAT == pytest.approx(1e-3)
    assert (cfg.MODEL.DFR.SIGMA_XY, cfg.MODEL.DFR.SIGMA_RGB, cfg.MODEL.DFR.SIGMA_FEAT) == (
        6.0,
        0.5,
        50.0,
    )
    assert cfg.MODEL.DFR.GAMMA == pytest.approx(0.98)
    assert cfg.SOLVER.BASE_LR == pytest.approx(3e-5)
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.MAX_ITER == 40000


def test_unknown_config_key_is_a_clear_keyerror(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(f"_BASE_: {CONFIGS / 'Base-DFR.yaml'}\nMODEL:\n  DFR:\n    LAMBDA_TYPO: 1.0\n")
    with pytest.raises(KeyError, match="Non-existent config key: MODEL.DFR.LAMBDA_TYPO"):
        _cfg().merge_from_file(str(bad))
    # the command-line form (train_net.py ... KEY VALUE) names the key too
    with pytest.raises(AssertionError, match="Non-existent key: MODEL.DFR.LAMBDA_TYPO"):
        _cfg().merge_from_list(["MODEL.DFR.LAMBDA_TYPO", "1.0"])


LISTING = CONFIGS.parents[2] / "tests" / "fixtures" / "dfr_config_keys.txt"


def _flat(node, prefix=""):
    from detectron2.config import CfgNode

    for k, v in node.items():
        if isinstance(v, CfgNode):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def config_listing():
    """`KEY = repr(default)` of every key add_dfr_config adds to Detectron2's get_cfg(), sorted."""
    from detectron2.config import get_cfg

    base = dict(_flat(get_cfg()))
    return [f"{k} = {v!r}" for k, v in sorted(_flat(_cfg())) if k not in base]


def test_add_dfr_config_adds_exactly_the_listed_keys_and_keeps_every_detectron2_default():
    """The whole flattened config: every Detectron2 key keeps get_cfg()'s value, and the keys
    DFR adds, with their defaults, are those of the committed listing
    tests/fixtures/dfr_config_keys.txt (rewrite it with `python tests/test_smoke.py`)."""
    import difflib

    from detectron2.config import get_cfg

    base, cfg = dict(_flat(get_cfg())), dict(_flat(_cfg()))
    changed = {k: (v, cfg.get(k, "<removed>")) for k, v in base.items() if cfg.get(k, "<removed>") != v}
    assert not changed, f"add_dfr_config changed Detectron2 defaults: {changed}"
    want = [ln for ln in LISTING.read_text().splitlines() if ln and not ln.startswith("#")]
    got = config_listing()
    assert got == want, "\n".join(difflib.unified_diff(want, got, "listing", "add_dfr_config", lineterm=""))


def test_get_dfr_cfg_merges_file_then_opts_and_falls_back_to_cpu():
    import torch

    from dfr.config import get_dfr_cfg

    cfg = get_dfr_cfg(CONFIGS / "Base-DFR.yaml", ["MODEL.DFR.RADIUS", "3", "MODEL.DEVICE", "cuda"])
    assert cfg.MODEL.META_ARCHITECTURE == "DFRSegmentor" and cfg.MODEL.DFR.RADIUS == 3
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    kept = get_dfr_cfg(None, ["MODEL.DEVICE", "cuda"], cpu_fallback=False)
    assert kept.MODEL.DEVICE == "cuda"
    # the method's keys live under MODEL.DFR (no top-level DFR node)
    assert "DFR" not in cfg and cfg.MODEL.DFR.GAMMA == 0.98


def test_nan_guard_is_a_solver_key_and_the_former_model_key_is_refused_naming_it(tmp_path):
    from dfr.config import get_dfr_cfg

    assert get_dfr_cfg().SOLVER.NAN_GUARD is True and "NAN_GUARD" not in get_dfr_cfg().MODEL.DFR
    assert get_dfr_cfg(None, ["SOLVER.NAN_GUARD", "False"]).SOLVER.NAN_GUARD is False
    old = tmp_path / "old.yaml"
    old.write_text("MODEL:\n  DFR:\n    NAN_GUARD: False\n")
    for args in ((old, ()), (None, ["MODEL.DFR.NAN_GUARD", "False"])):
        with pytest.raises(KeyError, match=r"MODEL\.DFR\.NAN_GUARD was renamed to SOLVER\.NAN_GUARD"):
            get_dfr_cfg(*args)


@pytest.mark.parametrize("on", [True, False])
def test_trainer_installs_the_nan_guard_as_solver_nan_guard_says(on):
    from dfr.config import get_dfr_cfg
    from dfr.engine import Trainer

    cfg = get_dfr_cfg(CONFIGS / "quick_schedules" / "dfr_swin_tiny_synthetic_instant_test.yaml",
                      ["MODEL.DEVICE", "cpu", "SOLVER.NAN_GUARD", str(on)])  # fmt: skip
    hooks = list(Trainer.build_model(cfg)._forward_hooks.values())
    assert [h.__qualname__.split(".")[0] for h in hooks] == (["install_nan_guard"] if on else [])


if __name__ == "__main__":  # rewrite the listing after adding / changing a key on purpose
    import sys

    sys.path.insert(0, str(CONFIGS.parents[2] / "tests"))
    LISTING.write_text("# KEY = default of every key dfr.add_dfr_config adds to Detectron2's get_cfg()\n"
                       "# (tests/test_smoke.py; rewrite with `python tests/test_smoke.py`)\n"
                       + "\n".join(config_listing()) + "\n")
    print(f"wrote {LISTING}")

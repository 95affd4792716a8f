"""Foundation: the package imports, registers and builds configs the Detectron2 way."""
import pytest
from conftest import CONFIGS


def test_detectron2_pure_python_parts_import():
    from detectron2.engine import DefaultTrainer, launch  # noqa: F401
    from detectron2.evaluation import SemSegEvaluator

    assert callable(launch)
    assert hasattr(SemSegEvaluator, "evaluate")
    assert DefaultTrainer.build_evaluator is not None


def test_import_dfr_exports_config_function():
    import dfr

    assert callable(dfr.add_dfr_config)
    assert dfr.__version__


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


def test_add_dfr_config_does_not_overwrite_detectron2_defaults():
    from detectron2.config import get_cfg

    base = get_cfg()
    cfg = _cfg()
    for key in ("MODEL.PIXEL_MEAN", "SOLVER.BASE_LR", "INPUT.CROP.SIZE", "TEST.AUG.FLIP"):
        a, b = base, cfg
        for part in key.split("."):
            a, b = a[part], b[part]
        assert a == b, key


def test_get_dfr_cfg_merges_file_then_opts_and_falls_back_to_cpu():
    import torch

    from dfr.config import get_dfr_cfg

    cfg = get_dfr_cfg(CONFIGS / "Base-DFR.yaml", ["MODEL.DFR.RADIUS", "3", "MODEL.DEVICE", "cuda"])
    assert cfg.MODEL.META_ARCHITECTURE == "DFRSegmentor" and cfg.MODEL.DFR.RADIUS == 3
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    kept = get_dfr_cfg(None, ["MODEL.DEVICE", "cuda"], cpu_fallback=False)
    assert kept.MODEL.DEVICE == "cuda"

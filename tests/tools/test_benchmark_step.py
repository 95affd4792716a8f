"""tools/benchmark_step.py --device cpu --tiny: every row and precision is reported, times are
positive, and the rows differ where the models differ."""
import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, load_script

TOOL = REPO / "tools" / "benchmark_step.py"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--device", "cpu", "--tiny", "--iters", "2", "--threads", "1",
         "--json", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_every_row_and_precision_with_positive_times(tiny_run):
    bench = load_script("tools/benchmark_step.py", "benchmark_step")
    res, stdout = tiny_run
    rows = {(r["row"], r["precision"]): r for r in res["rows"]}
    names = bench.default_rows(tiny=True)
    assert not any(n.endswith("_compiled") for n in names)
    assert set(rows) == {(n, p) for n in names for p in bench.PRECISIONS}
    for (name, prec), r in rows.items():
        if name == "mmseg_pce":
            assert r["skipped"] == "no --mmseg-python" and r["ms"] is None
        elif name == "pairwise_triton" and prec != "fp16":
            assert r["skipped"] == "the Triton kernels run on CUDA" and r["ms"] is None
        elif prec == "fp16":
            assert r["skipped"] == bench.FP16_CPU_SKIP and r["ms"] is None
        else:
            assert r["skipped"] is None, (name, prec)
            n = 1 if name == "infer_tta" else 2  # TTA: half the steps (12 views each)
            assert r["ms"] > 0 and len(r["ms_all"]) == n and min(r["ms_all"]) > 0, (name, prec)
            assert r["peak_mib"] is None  # CPU: no per-row peak
    meta = res["meta"]
    assert meta["tiny"] and meta["device"] == "cpu" and meta["batch"] == 2 and meta["size"] == 64
    assert meta["cpu_rss_peak_mib"] > 0
    assert "| row | precision | ms (median) |" in stdout and "pairwise / full" in stdout


def test_rows_differ_where_the_models_differ(tiny_run):
    res, _ = tiny_run
    rows = {(r["row"], r["precision"]): r for r in res["rows"]}
    for prec in ("fp32", "bf16"):
        pce, full = rows[("pce", prec)]["losses"], rows[("full", prec)]["losses"]
        assert set(pce) == {"loss_pce", "loss_aux"}
        assert set(full) - set(pce) == {"loss_dfr", "loss_fd", "loss_fr"}
        assert all(full[k] > 0 for k in ("loss_dfr", "loss_fd", "loss_fr"))
        # same weights and batch: the shared terms agree
        assert full["loss_pce"] == pytest.approx(pce["loss_pce"], rel=1e-2)
        # activation checkpointing changes memory and time, not the values
        ckpt = rows[("full_ckpt", prec)]["losses"]
        assert ckpt.keys() == full.keys()
        assert all(ckpt[k] == pytest.approx(full[k], rel=1e-4, abs=1e-6) for k in full), (ckpt, full)
        pairwise = rows[("pairwise", prec)]
        assert set(pairwise["losses"]) == {"loss_dfr", "loss_fd", "loss_fr"}
        # the torch window pass launches many more kernels than the model's pCE step has ops
        assert pairwise["launches"] > 100 and rows[("pce", prec)]["launches"] > 0
        ss, tta = rows[("infer_ss", prec)], rows[("infer_tta", prec)]
        assert (ss["views"], tta["views"]) == (1, 12)  # 6 scales x flip
        assert tta["ms"] > ss["ms"]
    ratios = res["ratios"]
    assert ratios["fp32"]["full_over_pce"] > 0 and ratios["fp32"]["pce_over_mmseg"] is None
    assert 0 < ratios["fp32"]["pairwise_share_of_full"]


def test_batch_is_the_same_in_every_interpreter():
    bench = load_script("tools/benchmark_step.py", "benchmark_step")
    a_img, a_lab = bench.make_batch(2, 64, 5)
    b_img, b_lab = bench.make_batch(2, 64, 5)
    assert a_img.equal(b_img) and a_lab.equal(b_lab)
    assert a_img.shape == (2, 3, 64, 64) and a_lab.shape == (2, 64, 64)
    labeled = (a_lab != 255).float().mean().item()
    assert 0 < labeled < 0.5 and set(a_lab.unique().tolist()) - {255} <= set(range(5))


def test_a_failing_row_is_reported_and_the_rest_kept():
    """An exception in a group of rows (e.g. out of memory at the paper's size) marks the rows
    it did not measure as failed, with the error, and keeps the ones it did."""
    import argparse

    bench = load_script("tools/benchmark_step.py", "benchmark_step")

    def rows_then_oom(cfg, args, pname, dtype, out):
        out.append(bench.row("pce", pname, "measured", (1.0, [1.0], None, {})))
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    args = argparse.Namespace(device="cpu")
    got = bench._guarded(rows_then_oom, ["pce", "full", "pairwise"], None, args, "fp32", None)
    assert [(r["row"], r["ms"]) for r in got] == [("pce", 1.0), ("full", None), ("pairwise", None)]
    assert got[0]["skipped"] is None
    for r in got[1:]:
        assert r["skipped"] == "failed: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_mmseg_worker_runs_where_dfr_is_not_importable(tmp_path):
    """The mmseg side runs in mmseg's own interpreter, where this project is not installed:
    the worker path of the script must never import dfr."""
    script = str(REPO / "tools" / "benchmark_step.py")
    req, out = tmp_path / "request.json", tmp_path / "result.json"
    req.write_text(json.dumps({"x": 7}))
    code = f"""
import importlib.abc, importlib.util, sys
class NoDfr(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "dfr" or name.startswith("dfr."):
            raise ImportError("dfr imported by the mmseg worker: " + name)
sys.meta_path.insert(0, NoDfr())
spec = importlib.util.spec_from_file_location("benchmark_step", {script!r})
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
m.mmseg_worker = lambda req: {{"rows": [], "versions": {{"x": req["x"]}}}}
sys.exit(m.main(["--mmseg-worker", {str(req)!r}, "--json", {str(out)!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text()) == {"rows": [], "versions": {"x": 7}}


def test_launch_count_counts_kernels_not_views():
    import torch

    bench = load_script("tools/benchmark_step.py", "benchmark_step")
    x = torch.ones(4, 4)

    def fn():
        y = (x + 1).view(16).t()  # one kernel, two views
        return (y * 2).sum()  # two kernels

    assert bench.count_launches(fn, "cpu") == 3

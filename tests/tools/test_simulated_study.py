"""tools/run_simulated_scribble_study.py: own scribbles vs simulated styles on the synthetic
benchmark, on a tiny schedule (the tiny synthetic set, 2 iterations, 2 seeds), and its table
(statistics of tools/run_synthetic_ablation.py, paired differences, the ±2 mIoU verdict)."""
import json
import math

import pytest
from helpers import REPO, load_script

QUICK = REPO / "projects/DFR/configs/quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml"


@pytest.fixture(scope="module")
def study():
    return load_script("tools/run_simulated_scribble_study.py")


def test_table_statistics_and_verdicts(study):
    var = study.variants("synthetic", ["s4", "cdsp", "skeleton"])
    assert var["sim_s4"][1] == "synthetic_full_train_sim_s4"
    assert var["own"][1] == "synthetic_scribble_train"
    own = {0: 50.0, 1: 52.0, 2: 54.0}
    sim = {"sim_s4": {0: 49.0, 1: 51.5, 2: 53.0},      # −1.17 ± 0.72: within
           "sim_cdsp": {0: 44.0, 1: 46.0, 2: 49.0},    # −5.67 ± 1.43: CI entirely below −2
           "sim_skeleton": {0: 47.0, 1: 53.0, 2: 55.0}}  # −0.33, but the CI reaches past ±2
    res = {("own", s): {"mIoU": v, "status": "ok"} for s, v in own.items()}
    for k, vals in sim.items():
        res.update({(k, s): {"mIoU": v, "status": "ok"} for s, v in vals.items()})
    table = study.make_table(res, [0, 1, 2], var, {"synthetic_scribble_train": 3.0})
    rows = {line.split(" (`")[0].strip("| "): line for line in table.splitlines()[2:]}
    # mean ± t(0.975, 2) * sd / sqrt(3) (= 4.303 * 2 / 1.732 = 4.97 for own)
    assert "| 52.0 ± 5.0 | 3 | 50.0 | 52.0 | 54.0 |" in rows["own scribbles"]
    assert "| 3.00 % |" in rows["own scribbles"]
    d = [-1.0, -0.5, -1.0]
    h = 4.303 * math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2) / math.sqrt(3)
    assert f"| -0.8 ± {h:.1f} | yes |" in rows["simulated, style s4"]
    assert rows["simulated, style cdsp"].endswith("| no (CI outside) |")
    assert rows["simulated, style skeleton"].endswith("| yes (CI crosses) |")


def test_tiny_study_runs_every_training_set(tmp_path, study, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "study"
    results = study.main(["--prefix", "synthetic_tiny", "--config-file", str(QUICK),
                          "--styles", "s4", "--seeds", "0", "1", "--max-iter", "2",
                          "--jobs", "1", "--output", str(out),
                          "--", "DATALOADER.NUM_WORKERS", "0"])  # fmt: skip
    assert sorted(results) == [("own", 0), ("own", 1), ("sim_s4", 0), ("sim_s4", 1)]
    assert all(r["status"] == "ok" and 0 <= r["mIoU"] <= 100 for r in results.values())
    # each run trained on its own set: the command line of the run names it
    log = (out / "sim_s4" / "seed1" / "stdout.log").read_text().splitlines()[0]
    assert "synthetic_tiny_full_train_sim_s4" in log and "SEED 1" in log
    assert "DATASETS.DFR.SIMULATION_SEED 1" in log  # seed k trains on simulation k
    assert "DATASETS.DFR.SIMULATION_SCALE auto" in log  # the default scale
    for k in (0, 1):
        sim = tmp_path / f"d2/simulated/synthetic_tiny_full_train/s4_auto_seed{k}"
        manifest = json.loads((sim / "manifest.json").read_text())
        assert (manifest["seed"], manifest["scale"]) == (k, "auto")
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"]["own/0"]["mIoU"] == results[("own", 0)]["mIoU"]
    assert 0 < saved["labeled_percent"]["synthetic_tiny_full_train_sim_s4"] < 50
    md = (out / "results.md").read_text()
    assert "simulated, style s4 (`synthetic_tiny_full_train_sim_s4`)" in md
    assert "2 training seeds (0 1), simulation seed = training seed, simulation scale auto" in md
    assert json.loads((out / "results.json").read_text())["simulation_scale"] == "auto"
    # a second call reuses the finished runs (no training)
    again = study.main(["--prefix", "synthetic_tiny", "--config-file", str(QUICK),
                        "--styles", "s4", "--seeds", "0", "1", "--max-iter", "2",
                        "--jobs", "1", "--output", str(out)])  # fmt: skip
    assert {k: v["mIoU"] for k, v in again.items()} == {k: v["mIoU"] for k, v in results.items()}
    assert all(v["seconds"] is None for v in again.values())


def test_scribble_variants_rows_and_the_paired_difference_to_full_length(study):
    args = study.parse_args(["--styles", "s4", "--scribble-variants", "len30", "drop50"])
    assert args.scribble_variants == ["len30", "drop50"]
    with pytest.raises(SystemExit):
        study.parse_args(["--scribble-variants", "len130"])
    var = study.variants("synthetic", ["s4"], args.scribble_variants)
    assert list(var) == ["own", "sim_s4", "sim_s4_len30", "sim_s4_drop50"]
    assert var["sim_s4_len30"][1] == "synthetic_full_train_sim_s4_len30"
    assert study.full_length("sim_s4_drop50") == "sim_s4" and study.full_length("sim_s4") is None
    vals = {"own": [50.0, 52.0, 54.0], "sim_s4": [49.0, 51.0, 53.0],
            "sim_s4_len30": [45.0, 48.0, 50.0], "sim_s4_drop50": [48.0, 50.0, 52.0]}
    res = {(v, s): {"mIoU": x, "status": "ok"} for v, xs in vals.items() for s, x in enumerate(xs)}
    table = study.make_table(res, [0, 1, 2], var, {})
    assert "| − full length (paired) | − own (paired) | within 2 |" in table.splitlines()[0]
    rows = {line.split(" (`")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert rows["simulated, style s4"].endswith("|  | -1.0 ± 0.0 | yes |")
    d = [-4.0, -3.0, -3.0]
    h = 4.303 * math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2) / math.sqrt(3)
    # the length variants: their own difference to full length, no ±2 verdict
    assert f"| -3.3 ± {h:.1f} | -4.3 ± " in rows["simulated, style s4, shortened to 30 %"]
    assert rows["simulated, style s4, shortened to 30 %"].endswith(" |  |")
    drop50 = rows["simulated, style s4, 50 % of scribbles dropped"]
    assert "| -1.0 ± 0.0 | -2.0 ± 0.0 |  |" in drop50

"""tools/run_synthetic_ablation.py: the 95 % t-interval, failing-seed marks, the
schedule estimate of --fit-budget and the table cells for crashed / missing runs."""
import math

from helpers import load_script


def _tool():
    return load_script("tools/run_synthetic_ablation.py", "ablation_tool")


def test_mean_ci_failing_and_makespan():
    t = _tool()
    m, h = t.mean_ci([1, 2, 3, 4, 5])  # sd = sqrt(2.5), t_0.975(4) = 2.776
    assert m == 3 and abs(h - 2.776 * math.sqrt(2.5) / math.sqrt(5)) < 1e-9
    assert math.isnan(t.mean_ci([7.0])[1])
    assert t.failing({0: 80.0, 1: 79.0, 2: 60.0, 3: 81.0, 4: None}) == {2}
    assert t.failing({0: 80.0, 1: 60.0}) == set()  # too few seeds to call one failing
    assert t.makespan([3, 3, 3, 1], 2) == 6 and t.makespan([5], 4) == 5


def test_tables_show_every_seed_and_its_status():
    t = _tool()
    res = {("random", "pce", 0): {"mIoU": 50.0, "status": "ok", "diag": {}},
           ("random", "pce", 1): {"mIoU": None, "status": "crashed (rc=1)", "diag": {}},
           ("random", "full", 0): {"mIoU": 52.0, "status": "ok",
                                   "diag": {"m_frac": 0.5, "pairs_fg": 0.0}}}
    md = t.make_tables(res, [0, 1], ["pce", "full"], ["random"])
    assert "| pCE only | 50.0 | 1 | 50.0 | crashed (rc=1) |" in md
    assert "not run" in md  # full, seed 1
    assert "| random | full | 0.50 | – | 0 |" in md  # diagnostics row

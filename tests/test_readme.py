"""The README as a newcomer uses it: every ```bash / ```python block runs on a CPU as written
(the own-scribbles section in tests/test_custom_dataset.py, the rest here), every block that
cannot (8 GPUs, a cluster, `make` itself) is a ```sh block, the README stays under 300 lines, and
every relative link of the README and docs/ points at a file of the repository."""
import os
import re
import subprocess
import sys
import time

from helpers import REPO
from helpers import checkout_like

README = REPO / "README.md"
OWN_SECTION = "## Train on your own scribbles"


def sections():
    """[(heading, body)] of the README's `## ` sections."""
    parts = re.split(r"^(## .*)$", README.read_text(), flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def blocks(kinds=("bash", "python", "sh")):
    """[(section heading, kind, code)] of every fenced block, in order."""
    return [(h, k, code) for h, body in sections()
            for k, code in re.findall(r"```(\w*)\n(.*?)```", body, flags=re.S) if k in kinds]  # fmt: skip


def test_readme_is_short_and_has_the_sections_users_look_for():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    heads = [h for h, _ in sections()]
    for h in ("## Install: two commands", "## Quick start", OWN_SECTION, "## Train and evaluate",
              "## Datasets", "## Paper table → config", "## Results at a glance",
              "## DFR keys and their allowed ranges"):  # fmt: skip
        assert h in heads, h
    assert "make test" in text  # .ci/run runs exactly `make test`


def test_blocks_that_are_not_run_say_why():
    """A ```sh block is shown, not run: it needs make itself, 8 GPUs or a SLURM cluster."""
    for head, kind, code in blocks(("sh",)):
        assert ("make " in code or "--num-gpus 8" in code or "--partition" in code), (head, code)
    kinds = {k for _, k, _ in blocks(kinds=("bash", "python", "sh", "", "text", "console"))}
    assert kinds <= {"bash", "python", "sh"}, kinds


def test_links_point_at_files():
    for md in [README, *sorted((REPO / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (md.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{md.relative_to(REPO)} links to a missing {target}"


def test_cpu_blocks_run_as_written(tmp_path):
    """Every ```bash / ```python block outside the own-scribbles section, with `.venv/bin/python`
    = the interpreter running this test, in a folder laid out like the checkout."""
    todo = [(h, k, c) for h, k, c in blocks(("bash", "python")) if h != OWN_SECTION]
    assert len(todo) >= 2  # training / evaluation, SLURM --local
    work = tmp_path / "work"
    checkout_like(work)
    env = {**os.environ, "DETECTRON2_DATASETS": str(work / "datasets"), "MPLBACKEND": "Agg"}
    env.pop("PYTHONWARNINGS", None)
    for head, kind, code in todo:
        t0 = time.time()
        cmd = (["bash", "-euo", "pipefail", "-c", code] if kind == "bash"
               else [sys.executable, "-c", code])  # fmt: skip
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        log = f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        assert r.returncode == 0, f"{head}: {kind} block failed:\n{code}\n{log}"
        assert "torch.jit" not in r.stderr, f"{head}: torch.jit warnings\n{r.stderr[-2000:]}"
        print(f"{head}: {time.time() - t0:.1f} s")
    out = work / "output"
    for run in ("instant_test", "instant_test_2proc", "instant_test_2nodes"):
        assert (out / run / "model_final.pth").is_file(), run
    for run in ("instant_test_eval", "instant_test_tta", "instant_test_slide"):
        assert list((out / run / "inference").rglob("sem_seg_metrics.json")) or list(
            (out / run).rglob("*.json")), run  # fmt: skip
    assert (out / "instant_test_submitit" / "model_final.pth").is_file()


def test_docs_with_measured_results_name_commit_and_date():
    """Pages whose tables report measurements say which code (commit) and when (date)."""
    pages = ["SYNTHETIC.md", "LOSSES.md", "PARITY.md", "MODEL_ZOO.md", "CUSTOM_SCRIBBLES.md",
             "INSTALL.md", "ablation_feature_branch/README.md",
             "simulated_scribble_study.md"]  # fmt: skip
    for name in pages:
        text = (REPO / "docs" / name).read_text()
        assert re.search(r"commit [0-9a-f]{7}", text), f"docs/{name}: no commit"
        assert re.search(r"20\d\d-\d\d-\d\d", text), f"docs/{name}: no date"

"""The README and docs/ as a newcomer uses them: every ```bash / ```python block of the README
and of docs/GETTING_STARTED.md runs on a CPU as written (the own-scribbles section in
tests/data/test_custom_dataset.py, the rest here) and prints only the project's own log; every block
that cannot (8 GPUs, a cluster, `make` itself, a trained model) is a ```sh block; no docs command
runs a bare `python` without activating the venv; the README is a landing page of at most 150
lines with a citation and a license; every docs page is indexed once, every script is in the
repository map, and every relative link points at a file of the repository."""
import os
import re
import subprocess
import sys
import time

from helpers import REPO
from helpers import checkout_like

README = REPO / "README.md"
GETTING_STARTED = REPO / "docs" / "GETTING_STARTED.md"
OWN_SECTION = "## Train on your own scribbles"


def sections(md=README):
    """[(heading, body)] of a page's `## ` sections."""
    parts = re.split(r"^(## .*)$", md.read_text(), flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def blocks(kinds=("bash", "python", "sh"), md=README):
    """[(section heading, kind, code)] of every fenced block, in order."""
    return [(h, k, code) for h, body in sections(md)
            for k, code in re.findall(r"```(\w*)\n(.*?)```", body, flags=re.S) if k in kinds]  # fmt: skip


def test_readme_is_a_short_landing_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    heads = [h for h, _ in sections()]
    for h in ("## Install: two commands", "## Quick start", OWN_SECTION, "## Train and evaluate",
              "## Results at a glance", "## Documentation", "## Citation",
              "## License"):  # fmt: skip
        assert h in heads, h
    assert "make test" in text  # .ci/run runs exactly `make test`


def test_license_and_citation():
    """LICENSE is Apache-2.0 (as detectron2); the README's BibTeX and CITATION.cff name the
    paper's title and authors as the paper states them, and the same arXiv id."""
    import yaml

    lic = (REPO / "LICENSE").read_text()
    assert "Apache License" in lic and "Version 2.0, January 2004" in lic
    assert "END OF TERMS AND CONDITIONS" in lic and len(lic.splitlines()) > 190
    title = "Dynamic Feature Regularized Loss for Weakly Supervised Semantic Segmentation"
    bib = [c for h, _, c in blocks(("bibtex",)) if h == "## Citation"]
    assert len(bib) == 1, "one ```bibtex block in the Citation section"
    assert f"title   = {{{title}}}" in bib[0]
    assert "author  = {Zhang, Bingfeng and Xiao, Jimin and Zhao, Yao}" in bib[0]
    arxiv = re.search(r"arXiv:(\d{4}\.\d{5})", bib[0]).group(1)
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0"
    ref = cff["preferred-citation"]
    assert ref["title"] == title
    assert [a["family-names"] for a in ref["authors"]] == ["Zhang", "Xiao", "Zhao"]
    assert ref["url"].endswith(arxiv)


def test_blocks_that_are_not_run_say_why():
    """A ```sh block is shown, not run: it needs make itself, 8 GPUs, a SLURM cluster, is a
    template with `<placeholders>`, or says in a `# needs ...` comment what it needs."""
    for md in (README, GETTING_STARTED):
        for head, kind, code in blocks(("sh",), md):
            assert ("make " in code or "--num-gpus 8" in code or "--partition" in code
                    or code.startswith("# needs") or re.search(r"<[a-z][^>]*>", code)), (
                md.name, head, code)  # fmt: skip
    kinds = {k for _, k, _ in blocks(kinds=("bash", "python", "sh", "", "text", "console"))}
    assert kinds <= {"bash", "python", "sh"}, kinds


def code_blocks(text):
    """The code a reader copies from a markdown page: fenced blocks, indented blocks (4+
    spaces after a blank line, list continuations included) and inline `code` spans."""
    out = [m.group(1) for m in re.finditer(r"```\w*\n(.*?)```", text, flags=re.S)]
    rest = re.sub(r"```\w*\n.*?```", "", text, flags=re.S)
    for m in re.finditer(r"(?:^\n)((?:^(?: {4,}.*)?\n)+)", rest, flags=re.M):
        out.append(m.group(1))
    out += re.findall(r"`([^`\n]+)`", rest)
    return out


# a command that starts with python / python3; the system python is fine for what needs no
# package: creating a venv, or `-c` code that imports nothing (e.g. a busy loop)
BARE_PYTHON = re.compile(r"(?:^|[;&|(]|\$\()\s*python3?\s(?!-m venv|-c [\"'](?![^\"']*import))",
                         flags=re.M)  # fmt: skip


def test_docs_commands_do_not_run_a_bare_python():
    """A bare `python` is not the project's interpreter (`make` installs into .venv and nothing
    activates it): docs commands use `.venv/bin/python`, or the block activates the venv first."""
    pages = [README, REPO / "datasets" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    bad = []
    for md in pages:
        for code in code_blocks(md.read_text()):
            if "source .venv/bin/activate" in code or ". .venv/bin/activate" in code:
                continue
            bad += [f"{md.relative_to(REPO)}: {line.strip()}" for line in code.splitlines()
                    if BARE_PYTHON.search(line)]  # fmt: skip
    assert not bad, "bare python (use .venv/bin/python or activate first):\n" + "\n".join(bad)


def test_the_bare_python_check_sees_fenced_indented_and_inline_code():
    text = ("```bash\npython a.py\n```\n\n```sh\nsource .venv/bin/activate\npython b.py\n```\n"
            "1. Convert:\n\n       python c.py \\\n           --x 1\n\nsee `python d.py` and "
            "`.venv/bin/python e.py`, `PYTHON=python3.11 make`, "
            "`python3 -m venv .venv`, `python3 -c \"while True: pass\"`, "
            "`python -c \"import dfr\"`\n")  # fmt: skip
    found = sorted(line.strip() for code in code_blocks(text)
                   if "activate" not in code for line in code.splitlines()
                   if BARE_PYTHON.search(line))  # fmt: skip
    want = ["python -c \"import dfr\"", "python a.py", "python c.py \\", "python d.py"]
    assert found == want, found


def _docs_pages():
    """The pages the index must list: docs/*.md and docs/<folder>/README.md (a folder's other
    pages are that README's)."""
    docs = REPO / "docs"
    return sorted([p for p in docs.glob("*.md") if p.name != "README.md"]
                  + list(docs.glob("*/README.md")))  # fmt: skip


def test_docs_index_lists_every_page_once():
    index = REPO / "docs" / "README.md"
    links = [(index.parent / t.split("#")[0]).resolve()
             for t in re.findall(r"^\| \[[^]]*\]\(([^)\s]+)\)", index.read_text(), flags=re.M)]
    links = [p / "README.md" if p.is_dir() else p for p in links]
    pages = [p.resolve() for p in _docs_pages()]
    assert len(pages) >= 10
    for page in pages:
        n = links.count(page)
        assert n == 1, f"docs/README.md lists {page.relative_to(REPO)} {n} times (want once)"


def test_repository_map_names_every_script():
    """Every script (and package folder) in tools/ and datasets/ is in the map of
    docs/GETTING_STARTED.md, and every script the map names there exists."""
    text = GETTING_STARTED.read_text()
    body = text[text.index("## Repository map"):]
    tree = re.search(r"```\n(.*?)```", body, flags=re.S).group(1)
    for folder in ("tools", "datasets"):
        # the folder's entry: the line that starts with `tools/` and the indented ones below it
        entry = re.search(rf"^{folder}/.*\n(?:^ .*\n)*", tree, flags=re.M).group(0)
        mapped = re.findall(r"[\w.-]+\.(?:py|sh)\b", entry)
        for path in sorted((REPO / folder).iterdir()):
            if path.suffix in (".py", ".sh"):
                assert path.name in mapped, f"{folder}/{path.name} is not in the repository map"
            elif path.is_dir() and not path.name.startswith((".", "__")):
                assert f"{path.name}/" in entry, f"{folder}/{path.name}/ is not in the map"
        for name in mapped:
            assert list((REPO / folder).rglob(name)), f"the map names {folder}/{name}: not there"


def test_no_cuda_home_line_without_a_gpu(tmp_path):
    """torch.utils.cpp_extension (imported by Detectron2's collect_env at every start) logs
    `No CUDA runtime is found, using CUDA_HOME=...` on a machine with CUDA_HOME but no GPU;
    importing dfr first (as every entry point does) drops that line."""
    code = ("{}from detectron2.utils.collect_env import collect_env_info; "
            "collect_env_info(); print('done')")  # fmt: skip
    env = {**os.environ, "CUDA_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)
    runs = {}
    for pre in ("", "import dfr; "):
        r = subprocess.run([sys.executable, "-c", code.format(pre)], env=env, text=True,
                           capture_output=True, timeout=300)  # fmt: skip
        assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
        runs[pre] = r.stdout + r.stderr
    import torch

    if not torch.cuda.is_available():  # the line this test is about shows without dfr
        assert "No CUDA runtime is found" in runs[""], runs[""][-2000:]
    assert "No CUDA runtime is found" not in runs["import dfr; "]


def test_links_point_at_files():
    for md in [README, *sorted((REPO / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (md.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{md.relative_to(REPO)} links to a missing {target}"


def test_cpu_blocks_run_as_written(tmp_path):
    """Every ```bash / ```python block of the README outside the own-scribbles section, then
    those of docs/GETTING_STARTED.md (several machines, SLURM --local), with `.venv/bin/python`
    = the interpreter running this test, in a folder laid out like the checkout. CUDA_HOME is
    set, as on a machine with the CUDA toolkit: the output has no CUDA_HOME line either."""
    todo = [(h, k, c) for h, k, c in blocks(("bash", "python")) if h != OWN_SECTION]
    assert len(todo) >= 1  # training / evaluation
    todo += blocks(("bash", "python"), GETTING_STARTED)
    assert len(todo) >= 3  # + several machines, SLURM --local
    work = tmp_path / "work"
    checkout_like(work)
    env = {**os.environ, "DETECTRON2_DATASETS": str(work / "datasets"), "MPLBACKEND": "Agg",
           "CUDA_HOME": str(tmp_path)}  # fmt: skip
    env.pop("PYTHONWARNINGS", None)
    for head, kind, code in todo:
        t0 = time.time()
        cmd = (["bash", "-euo", "pipefail", "-c", code] if kind == "bash"
               else [sys.executable, "-c", code])  # fmt: skip
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        log = f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        assert r.returncode == 0, f"{head}: {kind} block failed:\n{code}\n{log}"
        assert "torch.jit" not in r.stderr, f"{head}: torch.jit warnings\n{r.stderr[-2000:]}"
        assert "No CUDA runtime" not in r.stdout + r.stderr, f"{head}: CUDA_HOME line"
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

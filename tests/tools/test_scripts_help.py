"""Every script's --help names the defaults of its options, and the hand-run entry points print
no torch.jit FutureWarnings (importing dfr first silences those two messages; the Makefile's
PYTHONWARNINGS is not needed)."""
import argparse
import contextlib
import io
import os
import runpy
import subprocess
import sys

import pytest
from helpers import REPO

from dfr.cli import shows_default

SCRIPTS = sorted(
    [REPO / "projects/DFR/train_net.py", REPO / "projects/DFR/demo/demo.py"]
    + list((REPO / "tools").glob("*.py"))
    + list((REPO / "datasets").glob("prepare_*.py"))
)


def _help_of(path, monkeypatch):
    """Run `path --help` in this process; return the parsers that printed help and the text."""
    parsers = []
    original = argparse.ArgumentParser.print_help

    def record(self, file=None):
        parsers.append(self)
        original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", record)
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    monkeypatch.syspath_prepend(str(path.parent))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        runpy.run_path(str(path), run_name="__main__")
    assert e.value.code in (0, None), out.getvalue()
    return parsers, out.getvalue()


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_help_names_every_default(path, monkeypatch):
    parsers, text = _help_of(path, monkeypatch)
    assert parsers, f"{path.name} --help printed no argparse help"
    missing = []
    for parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not shows_default(action):
                continue
            if "default" not in formatter._format_action(action).lower():
                missing.append(f"{'/'.join(action.option_strings) or action.dest}={action.default!r}")
    assert not missing, f"{path.name} --help does not show the defaults of {missing}"
    if any(shows_default(a) for p in parsers for a in p._actions):
        assert "default" in text


def test_a_broken_help_is_caught(monkeypatch, tmp_path):
    """The check itself: an option with a default and no '(default: ...)' fails it."""
    script = tmp_path / "s.py"
    script.write_text("import argparse\np = argparse.ArgumentParser()\n"
                      "p.add_argument('--n', type=int, default=3, help='how many')\np.parse_args()\n")  # fmt: skip
    parsers, _ = _help_of(script, monkeypatch)
    (action,) = [a for a in parsers[0]._actions if a.dest == "n"]
    assert shows_default(action)
    assert "default" not in parsers[0]._get_formatter()._format_action(action)


@pytest.mark.parametrize("argv", [
    ["projects/DFR/train_net.py", "--help"],
    ["projects/DFR/demo/demo.py", "--help"],
    ["tools/visualize.py", "--help"],
    ["tools/scribble_stats.py", "--help"],
    ["datasets/prepare_voc_scribble.py", "--help"],
])  # fmt: skip
def test_entry_points_print_no_torch_jit_warnings(argv):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run([sys.executable, "-W", "default", *argv], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "torch.jit" not in r.stderr and "FutureWarning" not in r.stderr, r.stderr[-2000:]

"""Library internals the project overrides, mirrors or relies on (timm's Swin block attention,
Detectron2's launch, DefaultTrainer.__init__ and AMPTrainer.run_step): each must still be the
function the project's code was written against. A new timm or Detectron2 release that
changes one fails here with the diff, so that the project's code is checked against the new
function before it is trusted with it. The recorded copies: tests/fixtures/upstream/."""
import ast
import difflib
import importlib
import inspect
import textwrap
from pathlib import Path

import pytest

UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "upstream"
RECORDED = sorted(p.name[: -len(".py.txt")] for p in UPSTREAM.glob("*.py.txt"))


def resolve(dotted: str):
    """`pkg.module.Class.attr` -> the object (the longest importable module prefix first)."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def normalised(source: str):
    """The code without comments and formatting (ast round trip), one line per statement."""
    return ast.unparse(ast.parse(textwrap.dedent(source))).splitlines()


def source_diff(dotted: str, recorded: str) -> str:
    """Unified diff between the recorded source and the installed object's ('' = the same)."""
    installed = normalised(inspect.getsource(resolve(dotted)))
    lib = importlib.import_module(dotted.split(".")[0])
    return "\n".join(difflib.unified_diff(
        normalised(recorded), installed, "recorded", f"{lib.__name__} {lib.__version__}",
        lineterm=""))  # fmt: skip


def test_every_override_has_its_recorded_upstream_function():
    assert RECORDED == [
        "detectron2.engine.defaults.DefaultTrainer.__init__",
        "detectron2.engine.launch._distributed_worker",
        "detectron2.engine.launch._find_free_port",
        "detectron2.engine.launch.launch",
        "detectron2.engine.train_loop.AMPTrainer.run_step",
        "timm.models.swin_transformer.SwinTransformerBlock._attn",
    ]


@pytest.mark.parametrize("dotted", RECORDED)
def test_upstream_function_is_the_recorded_one(dotted):
    recorded = (UPSTREAM / f"{dotted}.py.txt").read_text()
    used_by = next(line for line in recorded.splitlines() if line.startswith("# Used by: "))
    diff = source_diff(dotted, recorded)
    assert not diff, (
        f"{dotted} changed upstream. {used_by[2:]} Check that code against the new function, "
        f"then update tests/fixtures/upstream/{dotted}.py.txt (and the version bounds).\n{diff}"
    )


def test_a_changed_upstream_function_is_reported_with_its_diff():
    """The check itself: a recorded copy with one line changed gives that line in the diff."""
    recorded = (UPSTREAM / "detectron2.engine.launch._find_free_port.py.txt").read_text()
    assert source_diff("detectron2.engine.launch._find_free_port", recorded) == ""
    # comments and formatting do not count
    reformatted = recorded.replace('sock.bind(("", 0))', 'sock.bind(  ("", 0)  )  # any port')
    assert source_diff("detectron2.engine.launch._find_free_port", reformatted) == ""
    changed = recorded.replace('sock.bind(("", 0))', 'sock.bind(("127.0.0.1", 0))')
    diff = source_diff("detectron2.engine.launch._find_free_port", changed)
    assert "-    sock.bind(('127.0.0.1', 0))" in diff and "+    sock.bind(('', 0))" in diff

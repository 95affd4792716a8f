"""Split lists of a prepared dataset: expected image counts and the end of a preparation run
(lists written, counts checked, summary, manifest finished)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from .common import PrepareManifest, Problems, write_ids

__all__ = ["parse_counts", "check_counts", "finish_splits"]


def parse_counts(text: str) -> Dict[str, int]:
    """``"train_aug=10582,val=1449"`` -> dict."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, _, v = part.partition("=")
        if not v:
            raise ValueError(f"--expected-counts: expected name=number, got {part!r}")
        out[k.strip()] = int(v)
    return out


def check_counts(splits: Dict[str, List[str]], expected: Dict[str, int], problems: Problems):
    for name, n in expected.items():
        if name not in splits:
            continue
        if len(splits[name]) != n:
            problems.error(
                "count",
                f"split {name} has {len(splits[name])} images, expected {n} "
                "(wrong/partial archive? pass --expected-counts or --no-verify-counts "
                "for a subset)",
            )


def finish_splits(args, splits: Dict[str, List[str]], list_dir: Path, out: Path,
                  expected: Dict[str, int], problems: Problems, run: PrepareManifest) -> int:
    """The end of a split-list preparation: `<list_dir>/<split>.txt` (not when an input list
    is missing), the counts against `expected` or --expected-counts (unless
    --no-verify-counts), a summary line, the run's manifest; returns the exit status."""
    if problems.errors.get("missing list"):
        problems.note("split lists", "not written: an input list is missing")
    else:
        for name, ids in splits.items():
            write_ids(list_dir / f"{name}.txt", ids)
    if not args.no_verify_counts:
        counts = parse_counts(args.expected_counts) if args.expected_counts else expected
        check_counts(splits, counts, problems)
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    if args.fast:
        problems.note("images", "--fast: JPEG headers only, pixels not decoded")
    run.finished()
    return problems.report()

"""What the data-preparation scripts (datasets/prepare_*.py) and tools/scribble_stats.py share;
the scripts themselves stay thin command lines."""

from .common import (
    MANIFEST,
    PrepareManifest,
    Problems,
    add_output_options,
    check_manifest,
    default_root,
    existing_label_ok,
    image_sizes,
    link_file,
    place_images,
    read_ids,
    run_options,
    tqdm,
    write_ids,
    write_manifest,
    write_png,
)
from .splits import check_counts, finish_splits, parse_counts
from .stats import image_stats, write_report

__all__ = [
    "PrepareManifest",
    "add_output_options",
    "MANIFEST",
    "Problems",
    "check_counts",
    "check_manifest",
    "finish_splits",
    "default_root",
    "existing_label_ok",
    "image_sizes",
    "image_stats",
    "link_file",
    "parse_counts",
    "place_images",
    "read_ids",
    "run_options",
    "tqdm",
    "write_ids",
    "write_manifest",
    "write_png",
    "write_report",
]

"""The engine tests' helpers live in helpers.py; this module only re-exports them for the
modules that still import them from here."""
from helpers import (  # noqa: F401
    DETERMINISTIC_OPTS,
    INSTANT,
    REPO,
    TINY_SPEC_KW,
    TRAIN_NET,
    dataset_opts,
    load_train_net,
    metrics_rows,
    parse,
    python,
    register_tiny,
    setup_cfg,
)

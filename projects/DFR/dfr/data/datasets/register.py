"""The datasets a config names beyond the built-in ones, registered by ONE explicit call at the
entry points (train_net.py, demo/demo.py, the tools that load datasets): building a config
(`dfr.config.get_dfr_cfg`) registers nothing."""
from typing import List

from .custom_json import register_custom_from_cfg
from .simulated import register_simulated_from_cfg

__all__ = ["register_datasets_from_cfg"]


def register_datasets_from_cfg(cfg) -> List[str]:
    """Register the datasets `cfg` asks for (idempotent: a second call with the same config
    changes nothing), in this order:

    1. the `<name>_train` / `<name>_val` sets of every DATASETS.DFR.CUSTOM dataset.json;
    2. the `<source>_sim_<style>` names of DATASETS.TRAIN / TEST (simulated scribbles; the
       source may be one of step 1's sets).

    The built-in sets are registered when `dfr.data` is imported. Returns the names."""
    names = register_custom_from_cfg(cfg)
    names += register_simulated_from_cfg(cfg)
    return names

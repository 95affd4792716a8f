"""Dataset registration (lazy: names only at import; files are read when a name is loaded)."""

from ..paths import get_datasets_root
from .builtin import register_all
from .custom import read_class_list, register_scribble_dataset
from .custom_json import register_custom_from_cfg, register_scribble_dataset_from_json
from .register import register_datasets_from_cfg
from .simulated import register_simulated_from_cfg, register_simulated_scribbles
from .split_files import CONTEXT_TREE, VOC_TREE, load_sem_seg_split, register_sem_seg_split

register_all()

__all__ = [
    "CONTEXT_TREE",
    "VOC_TREE",
    "get_datasets_root",
    "load_sem_seg_split",
    "register_all",
    "register_sem_seg_split",
    "read_class_list",
    "register_custom_from_cfg",
    "register_datasets_from_cfg",
    "register_scribble_dataset",
    "register_scribble_dataset_from_json",
    "register_simulated_from_cfg",
    "register_simulated_scribbles",
]

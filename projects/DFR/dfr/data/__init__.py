"""Data: dataset registration, the scribble mapper, augmentations, scribble tools and the
embedded synthetic benchmark. Importing `dfr.data` registers the dataset NAMES only; files
are read (and the synthetic set generated) when a name is first loaded."""

from .dataset_mapper import ScribbleDatasetMapper, build_train_augmentations
from .labels import LabelMapError, read_label
from .scribbles.simulate import GENERATOR_VERSION, STYLES, simulate_scribbles
from .transforms import PhotometricDistortion, PhotometricTransform, RandomScaleKeepRatio

# Imported for its registration side effect (DatasetCatalog / MetadataCatalog names).
from . import datasets  # noqa: F401  isort: skip
from .datasets import (  # noqa: E402  isort: skip
    register_datasets_from_cfg,
    register_scribble_dataset,
    register_scribble_dataset_from_json,
    register_simulated_scribbles,
)

__all__ = [
    "ScribbleDatasetMapper",
    "build_train_augmentations",
    "LabelMapError",
    "read_label",
    "PhotometricDistortion",
    "PhotometricTransform",
    "RandomScaleKeepRatio",
    "GENERATOR_VERSION",
    "STYLES",
    "simulate_scribbles",
    "register_datasets_from_cfg",
    "register_scribble_dataset",
    "register_scribble_dataset_from_json",
    "register_simulated_scribbles",
]

"""DFR: Dynamic Feature Regularized loss for scribble-supervised semantic segmentation,
as a Detectron2 project. Importing `dfr` registers its datasets, backbone, heads and
meta-architecture in Detectron2's registries."""
from .config import add_dfr_config

# Imported for their registration side effects (the built-in datasets in DatasetCatalog,
# BACKBONE_REGISTRY, DFR_SEM_SEG_HEADS_REGISTRY, META_ARCH_REGISTRY). The datasets a config
# names beyond those: dfr.data.register_datasets_from_cfg(cfg), called by the entry points.
from . import data  # noqa: F401  isort: skip
from . import modeling  # noqa: F401  isort: skip

__all__ = ["add_dfr_config"]
__version__ = "0.1.0"

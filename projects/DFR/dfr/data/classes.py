"""Class names, ScribbleSup tag names and colours of the datasets DFR registers.

Conventions: ids 0..C-1 with background = 0 and 255 = unlabeled.
VOC: 21 classes. PASCAL Context: 60 classes (background + 59) or 59 (background ignored:
Context-60 id k>0 becomes k-1, background becomes 255, as mmseg's reduce_zero_label).
"""
import numpy as np

__all__ = [
    "VOC_CLASSES",
    "VOC_SCRIBBLE_TAGS",
    "CONTEXT59_CLASSES",
    "CONTEXT60_CLASSES",
    "IGNORE_LABEL",
    "voc_palette",
    "voc_colors",
    "context60_to_59",
    "CONTEXT_TAG_SYNONYMS",
]

IGNORE_LABEL = 255

# Names as in the paper's Table 2 header (short names), index = class id.
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip

# ScribbleSup XML <tag> names (short names; real_voc/README.md), index = VOC class id.
VOC_SCRIBBLE_TAGS = [
    "background", "plane", "bike", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "table", "dog", "horse", "motorbike", "person", "plant", "sheep", "sofa", "train",
    "monitor",
]  # fmt: skip

# The 59 most frequent PASCAL Context classes (official 59-class list, alphabetical).
CONTEXT59_CLASSES = [
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck",
    "tvmonitor", "wall", "water", "window", "wood",
]  # fmt: skip
CONTEXT60_CLASSES = ["background"] + CONTEXT59_CLASSES

# ScribbleSup tag / PASCAL-Context label-file spellings -> CONTEXT59_CLASSES name (used by
# dfr.data.scribbles). VOC short tags of the VOC release and VOC long names both occur.
CONTEXT_TAG_SYNONYMS = {
    "plane": "aeroplane", "airplane": "aeroplane", "bike": "bicycle", "diningtable": "table",
    "dining table": "table", "monitor": "tvmonitor", "tv": "tvmonitor", "tv/monitor": "tvmonitor",
    "tv monitor": "tvmonitor",
    "plant": "pottedplant", "potted plant": "pottedplant", "motorcycle": "motorbike",
    "shelf": "shelves",
}  # fmt: skip


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (n, 3) uint8 — the palette of VOC's indexed PNGs."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def voc_colors(num_classes: int):
    """Colours for `stuff_colors` metadata: list of [r, g, b] per class id."""
    return voc_palette(256)[:num_classes].tolist()


def context60_to_59(label: np.ndarray) -> np.ndarray:
    """Map a Context-60 label map (0 = background) to Context-59 (background -> 255)."""
    out = label.astype(np.int32) - 1
    out[(label == 0) | (label == IGNORE_LABEL)] = IGNORE_LABEL
    return out.astype(np.uint8)

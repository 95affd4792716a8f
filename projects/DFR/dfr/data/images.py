"""Image files, one way everywhere: the extensions an image folder may hold, an image's size
as Detectron2's `read_image` loads it (after the EXIF orientation), and the thread pool that
reads many files at once (dataset registration, the data-preparation scripts, the start-up
label scan)."""
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, Optional, Tuple, TypeVar, Union

__all__ = ["IMAGE_EXTENSIONS", "image_hw", "thread_map"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 0x0112  # values 5-8: the picture is stored turned by 90 degrees
_SERIAL_BELOW = 16  # fewer items: no thread pool

T = TypeVar("T")
R = TypeVar("R")


def image_hw(path: Union[str, os.PathLike], decode: bool = False) -> Tuple[int, int]:
    """(height, width) of an image as Detectron2's read_image (and LabelMe / CVAT) show it:
    after the EXIF orientation (a phone photo stored sideways). Reads the header only;
    `decode` also decodes every pixel, so that a truncated or corrupt file fails here and not
    when the training sampler reaches it. ValueError naming the file otherwise."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
            if decode:
                im.load()
    except Exception as e:  # PIL raises several types for broken or truncated files
        what = f"cannot decode image {path}" if decode else f"cannot read image header of {path}"
        raise ValueError(f"{what}: {e}") from e
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 0,
               desc: Optional[str] = None) -> List[R]:  # fmt: skip
    """`[fn(x) for x in items]`, in order, in a thread pool (PIL releases the GIL while it
    decodes); `workers` <= 0: min(8, CPU count); fewer than 16 items run serially. `desc`: a
    progress bar (tqdm) with this title."""
    items = list(items)
    workers = workers if workers > 0 else min(8, os.cpu_count() or 1)
    progress = (lambda it: it) if desc is None else _progress(desc, len(items))
    if len(items) < _SERIAL_BELOW or workers == 1:
        return list(progress(map(fn, items)))
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(progress(ex.map(fn, items)))


def _progress(desc: str, total: int):
    from tqdm import tqdm

    return lambda it: tqdm(it, total=total, desc=desc, unit="img")

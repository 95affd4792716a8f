"""Scribble annotations in every public form -> label maps (one converter for the project).

Forms read (a folder, a ``.zip`` of the files, or a single file):

- ``xml``: ScribbleSup XML (VOC release ``scribble_annotation/pascal_2012/*.xml``, the
  PASCAL-Context release, GatedCRF's ``voc_scribbles.zip``): ``<polygon><tag>..</tag>
  <point><X>..</X><Y>..</Y></point>..</polygon>``, 0-based pixel coordinates.
- ``txt``: one scribble per line, ``class_id,x1,y1,x2,y2,...`` (0-based ids and coordinates).
- ``png``: ready label maps (rloss ``pascal_2012_scribble``), 8-bit ``L`` or ``P`` (index = id).

The standard conversion (``rasterize`` defaults; tests/fixtures/README.md, rloss
``convertscribbles.m``):

- label size = the JPEG's size (never the XML ``<size>``); canvas 255 (unlabeled);
- each polygon, in file order, is drawn as the polyline through its consecutive points with
  line width 3: a pixel is labeled when its centre lies within ``line_width / 2`` of a
  segment (``line_width == 1``: Bresenham lines instead). Later polygons overwrite earlier;
- points outside the image are clamped to it (``clamp=True``), however far outside;
- a polygon whose points all coincide (single or repeated point) is drawn as a dot: pixels
  within ``point_radius`` (default 1.0 -> the centre and its 4 neighbours, 5 px). The rloss
  converter draws nothing there: ``point_radius=None`` reproduces that;
- a polygon without any point is skipped and counted (``ScribbleSet.num_empty``);
- tags map to ids by a ``TagMap`` (VOC short names; Context names -> 59/60-class ids). An
  unknown tag raises ``UnknownTagError`` naming the file and the tag, unless the map was
  built to ignore it (then the polygon is skipped and counted in ``ScribbleSet.ignored``).

Modules: ``formats`` (parsers), ``tags`` (tag maps), ``rasterize`` (drawing), ``sources``
(folder / zip / file by image id), ``simulate`` (scribbles simulated from dense maps in the
published styles: ``simulate_s4``, ``simulate_cdsp``, their typed ``params`` and ``strokes``),
``geometry`` (regions, skeleton graphs and paths, per-image seeding: shared by every
generator and tool), ``faithfulness`` (statistics against the dense ground truth), ``tools``
(shorten, drop and generate scribbles from label maps, for the scribble-length study and the
synthetic set), ``errors``. Label PNGs are read by
``dfr.data.labels``.
"""
from .errors import ScribbleError, ScribbleFormatError, UnknownTagError
from .formats import Scribble, ScribbleSet, parse_scribble_txt, parse_scribble_xml
from .rasterize import labeled_fraction, rasterize
from .sources import ScribbleSource, image_id_from_name, open_scribble_source
from .simulate import (
    DEFAULT_PARAMS,
    GENERATOR_VERSION,
    S4_PRESETS,
    STYLES,
    CdspParams,
    S4Params,
    SkeletonParams,
    image_seed,
    simulate_scribbles,
)
from .tags import (
    TagMap,
    context59_index,
    context_tag_map,
    read_context_labels_txt,
    voc_tag_map,
)
from .tools import (
    drop_scribbles,
    file_rng,
    scribble_components,
    shorten_scribbles,
    skeleton_order,
    skeleton_scribbles,
    transform_label_root,
)

__all__ = [
    "CdspParams",
    "DEFAULT_PARAMS",
    "GENERATOR_VERSION",
    "S4Params",
    "S4_PRESETS",
    "SkeletonParams",
    "STYLES",
    "Scribble",
    "ScribbleError",
    "ScribbleFormatError",
    "ScribbleSet",
    "ScribbleSource",
    "TagMap",
    "UnknownTagError",
    "context59_index",
    "context_tag_map",
    "drop_scribbles",
    "file_rng",
    "image_id_from_name",
    "image_seed",
    "labeled_fraction",
    "open_scribble_source",
    "parse_scribble_txt",
    "parse_scribble_xml",
    "rasterize",
    "read_context_labels_txt",
    "scribble_components",
    "shorten_scribbles",
    "simulate_scribbles",
    "skeleton_order",
    "skeleton_scribbles",
    "transform_label_root",
    "voc_tag_map",
]

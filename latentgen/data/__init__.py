"""Examples and where they come from: prepared files, standard sets, clips, pixels, masks.

The names below are stable for plugins: a modality plugin imports them from ``latentgen.data``.
"""

from typing import TYPE_CHECKING

from latentgen._exports import lazy_exports

_EXPORTS = {
    "cut_clips": "latentgen.data.clips",
    "Examples": "latentgen.data.examples",
    "allocate": "latentgen.data.examples",
    "filling_part": "latentgen.data.examples",
    "require_finite": "latentgen.data.examples",
    "MAX_PICTURE_PIXELS": "latentgen.data.pixels",
    "open_picture": "latentgen.data.pixels",
    "check_picture_size": "latentgen.data.pixels",
    "decode_uint8": "latentgen.data.pixels",
    "doubling_plan": "latentgen.data.pixels",
    "encode_uint8": "latentgen.data.pixels",
    "pictures_from_array": "latentgen.data.pixels",
    "picture_size_plan": "latentgen.data.pixels",
    "read_array": "latentgen.data.pixels",
    "Found": "latentgen.data.records",
    "Record": "latentgen.data.records",
    "SourceSpec": "latentgen.data.records",
    "need": "latentgen.data.records",
    "parse_source": "latentgen.data.records",
    "expand_shards": "latentgen.data.shards",
    "class_names_of": "latentgen.data.sources",
    "decode_records": "latentgen.data.sources",
    "labels_of": "latentgen.data.sources",
    "open_standard": "latentgen.data.sources",
    "picture_side": "latentgen.data.sources",
    "resolved_source": "latentgen.data.sources",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:
    from latentgen.data.clips import cut_clips
    from latentgen.data.examples import Examples, allocate, filling_part, require_finite
    from latentgen.data.pixels import (
        MAX_PICTURE_PIXELS,
        check_picture_size,
        decode_uint8,
        doubling_plan,
        encode_uint8,
        open_picture,
        picture_size_plan,
        pictures_from_array,
        read_array,
    )
    from latentgen.data.records import Found, Record, SourceSpec, need, parse_source
    from latentgen.data.shards import expand_shards
    from latentgen.data.sources import (
        class_names_of,
        decode_records,
        labels_of,
        open_standard,
        picture_side,
        resolved_source,
    )

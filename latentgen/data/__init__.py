"""Examples and where they come from: in-memory sets, prepared files, clips, pixels, masks.

The names below are stable for plugins: a modality plugin imports them from ``latentgen.data``.
"""

from typing import TYPE_CHECKING

from latentgen._exports import lazy_exports

_EXPORTS = {
    "cut_clips": "latentgen.data.clips",
    "Examples": "latentgen.data.examples",
    "allocate": "latentgen.data.examples",
    "check_picture_size": "latentgen.data.pixels",
    "decode_uint8": "latentgen.data.pixels",
    "doubling_plan": "latentgen.data.pixels",
    "encode_uint8": "latentgen.data.pixels",
    "pictures_from_array": "latentgen.data.pixels",
    "picture_size_plan": "latentgen.data.pixels",
    "read_array": "latentgen.data.pixels",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:
    from latentgen.data.clips import cut_clips
    from latentgen.data.examples import Examples, allocate
    from latentgen.data.pixels import (
        check_picture_size,
        decode_uint8,
        doubling_plan,
        encode_uint8,
        picture_size_plan,
        pictures_from_array,
        read_array,
    )

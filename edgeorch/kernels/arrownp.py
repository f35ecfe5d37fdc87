"""pyarrow arrays as numpy arrays, read from their buffers: without pyarrow's pandas bridge.

pyarrow's own ``Array.to_numpy`` converts through its pandas bridge, which
imports pandas when pandas is installed (0.4-0.8 s of a command's start-up,
for nothing: no pandas object is made). The columns the kernels read most
(fixed-width integers, floats and booleans with their nulls dropped) are
plain buffers that numpy can view directly; :func:`to_numpy` does that, and
hands any other array to pyarrow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DTYPES: dict[str, np.dtype] = {name: np.dtype(name) for name in (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")}
_DTYPES.update({"halffloat": np.dtype("float16"), "float": np.dtype("float32"), "double": np.dtype("float64")})
"""pyarrow type name (``str(type)``) -> the numpy dtype with the same memory layout."""


def to_numpy(arr: Any) -> np.ndarray:
    """The values of a pyarrow ``Array`` as a numpy array.

    An array without nulls of an integer, floating-point or boolean type is
    read from its data buffer: a read-only view for numbers (what pyarrow's
    zero-copy conversion gives), a new bool array for booleans (Arrow packs
    them in bits). Anything else (nulls present, other types) goes through
    ``arr.to_numpy(zero_copy_only=False)``.
    """
    if arr.null_count == 0:
        name = str(arr.type)
        n, offset = len(arr), arr.offset
        data = arr.buffers()[1]
        if name in _DTYPES:
            dtype = _DTYPES[name]
            if data is None or n == 0:
                view = np.zeros(0, dtype)
            else:
                view = np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)
            view.flags.writeable = False  # Arrow's memory is immutable (and a read-only array is what pyarrow gives)
            return view
        if name == "bool":
            if data is None or n == 0:
                return np.zeros(0, bool)
            bits = np.frombuffer(data, dtype=np.uint8, count=(offset + n + 7) // 8)
            return np.unpackbits(bits, bitorder="little")[offset:offset + n].astype(bool)
    return arr.to_numpy(zero_copy_only=False)

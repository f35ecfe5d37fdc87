"""pyarrow arrays read as numpy from their buffers (edgeorch/kernels/arrownp.py) equal pyarrow's own conversion."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from edgeorch.kernels.arrownp import to_numpy

TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
         pa.float16(), pa.float32(), pa.float64()]


@pytest.mark.parametrize("t", TYPES, ids=str)
def test_numbers_are_a_view_of_the_buffer_equal_to_pyarrows(t: pa.DataType) -> None:
    arr = pa.array([1, 2, 3, 4, 5, 6, 7], type=t)
    for piece in (arr, arr.slice(2, 4), arr.slice(7)):  # offsets into the buffer, and an empty slice
        got = to_numpy(piece)
        want = piece.to_numpy(zero_copy_only=False)
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
        assert not got.flags.writeable  # like pyarrow's zero-copy view: Arrow data is immutable


@pytest.mark.parametrize("start,length", [(0, 19), (3, 11), (8, 9), (5, 0), (18, 1)])
def test_booleans_are_unpacked_from_their_bits(start: int, length: int) -> None:
    values = [i % 3 == 0 or i == 7 for i in range(19)]
    piece = pa.array(values).slice(start, length)
    got = to_numpy(piece)
    assert got.dtype == np.bool_ and got.tolist() == values[start:start + length]


def test_a_chunk_of_a_table_column_keeps_its_offset() -> None:
    col = pa.chunked_array([pa.array([1.5, 2.5]), pa.array([3.5, 4.5, 5.5])])
    assert to_numpy(col.chunk(1).slice(1)).tolist() == [4.5, 5.5]


@pytest.mark.parametrize("arr", [pa.array([1.0, None, 3.0]), pa.array(["a", "b"]), pa.array([True, None]),
                                 pa.array([1, 2], type=pa.timestamp("ns"))], ids=["nulls", "strings", "bool-nulls",
                                                                                   "timestamps"])
def test_anything_else_goes_through_pyarrow(arr: pa.Array) -> None:
    got = to_numpy(arr)
    want = arr.to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype and len(got) == len(want)

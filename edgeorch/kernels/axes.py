"""scipy's ``axis``, ``keepdims`` and ``nan_policy`` conventions for functions written on 1-D samples.

scipy's hypothesis tests compute n-dimensional input slice by slice along
``axis`` (default 0: per column of a 2-D array), broadcasting the other
dimensions of the samples against each other; ``axis=None`` ravels every
sample first; ``keepdims=True`` keeps the reduced axis with length 1. This
module does the same for the edgeorch kernels that mirror them
(:func:`~.stats.ks_2samp`), so one rule serves every such function:

- :func:`slices` turns the samples into 1-D slices and the output shape;
- :func:`nan_slice` applies ``nan_policy`` to one slice (``propagate``:
  the caller returns NaN; ``omit``: NaN dropped; ``raise``: a DataError
  whose text is scipy's "The input contains nan values");
- :func:`assemble` puts per-slice outputs back into arrays (or scalars when
  the input was 1-D and ``keepdims`` is false).

Masked arrays are refused (:func:`.columns.unmasked`): scipy would treat the
mask as omitted values, ``np.asarray`` would silently use them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .columns import unmasked

NAN_POLICIES = ("propagate", "omit", "raise")


def check_nan_policy(nan_policy: str) -> str:
    """``nan_policy`` itself; a DataError (a ValueError) for anything but propagate, omit or raise."""
    if nan_policy not in NAN_POLICIES:
        raise DataError("unknown nan_policy", field="nan_policy", value=nan_policy,
                        expected="propagate, omit or raise")
    return nan_policy


class Sliced:
    """Samples cut into 1-D slices along one axis (see :func:`slices`).

    ``shape`` is the output shape without the reduced axis (``()`` for 1-D
    input); ``items()`` yields ``(index, [slice of each sample])``;
    ``axis``/``ndim`` say where :func:`assemble` puts the kept dimension.
    """

    def __init__(self, arrays: list[np.ndarray], shape: tuple[int, ...], axis: int | None, ndim: int) -> None:
        self.arrays = arrays
        self.shape = shape
        self.axis = axis
        self.ndim = ndim

    def items(self) -> Iterator[tuple[tuple[int, ...], list[np.ndarray]]]:
        for idx in np.ndindex(self.shape) if self.shape else [()]:
            yield idx, [a[idx] for a in self.arrays]


def slices(samples: Sequence[Any], names: Sequence[str], axis: int | None) -> Sliced:
    """The 1-D slices of ``samples`` along ``axis``, broadcast in the other dimensions, as scipy does.

    Lower-dimensional samples gain leading dimensions of length 1 first
    (numpy broadcasting). A scalar is a sample of one value. An axis out of
    range, or shapes that do not broadcast, is a DataError naming the
    sample; the length along ``axis`` may differ between samples.
    """
    arrays = [unmasked(x, name) for x, name in zip(samples, names)]
    if axis is None:
        ndim = max(a.ndim for a in arrays)
        return Sliced([np.ravel(a) for a in arrays], (), None, ndim)
    arrays = [np.atleast_1d(a) for a in arrays]
    ndim = max(a.ndim for a in arrays)
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -ndim <= axis < ndim:
        raise DataError("axis is out of range for the samples", field="axis", value=axis,
                        expected=f"an integer from {-ndim} to {ndim - 1}, or None (every value at once)")
    axis = int(axis) % ndim
    moved = [np.moveaxis(a.reshape((1,) * (ndim - a.ndim) + a.shape), axis, -1) for a in arrays]
    try:
        shape = np.broadcast_shapes(*(m.shape[:-1] for m in moved))
    except ValueError:
        raise DataError("the samples' shapes do not broadcast (apart from the axis)", field=names[1],
                        value=" and ".join(str(a.shape) for a in arrays),
                        expected=f"shapes equal or 1 in every dimension but axis {axis}") from None
    return Sliced([np.broadcast_to(m, shape + m.shape[-1:]) for m in moved], tuple(shape), axis, ndim)


def nan_slice(parts: list[np.ndarray], nan_policy: str) -> tuple[list[np.ndarray], bool]:
    """One slice under ``nan_policy``: ``(samples, has_nan)``.

    ``propagate``: the samples as given and whether any holds NaN (the
    caller then returns NaN outputs, as scipy); ``omit``: NaN removed;
    ``raise``: a DataError (a ValueError) with scipy's text "The input
    contains nan values". Only float samples can hold NaN.
    """
    if not any(p.dtype.kind in "fc" and _may_hold_nan(p) for p in parts):
        return parts, False
    nan = [np.isnan(p) if p.dtype.kind in "fc" else None for p in parts]
    if not any(m is not None and bool(m.any()) for m in nan):
        return parts, False
    if nan_policy == "raise":
        raise DataError("The input contains nan values", field="nan_policy", value="raise",
                        expected="samples without NaN (or nan_policy='omit' to leave NaN out)")
    if nan_policy == "omit":
        return [p if m is None else p[~m] for p, m in zip(parts, nan)], False
    return parts, True


def _may_hold_nan(p: np.ndarray) -> bool:
    """False when ``p`` surely holds no NaN: its sum is not NaN (a NaN always makes the sum NaN).

    One pass without a mask array; a NaN sum without NaN (``inf - inf``) only
    costs the exact check after it.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isnan(np.sum(p)))


def assemble(sliced: Sliced, outputs: list[tuple[Any, ...]], keepdims: bool) -> list[Any]:
    """Per-slice output tuples (in :meth:`Sliced.items` order) as one value per output position.

    1-D input without ``keepdims``: the scalars as given. Otherwise a float
    array of ``sliced.shape`` per output; ``keepdims`` re-inserts the reduced
    axis with length 1 (every axis, of length 1, when ``axis`` was None).
    """
    n_out = len(outputs[0])
    if not sliced.shape and not keepdims:
        return list(outputs[0])
    result = []
    for k in range(n_out):
        arr = np.array([o[k] for o in outputs], dtype=np.float64).reshape(sliced.shape)
        if keepdims:
            arr = arr.reshape((1,) * sliced.ndim) if sliced.axis is None else np.expand_dims(arr, sliced.axis)
        result.append(arr)
    return result

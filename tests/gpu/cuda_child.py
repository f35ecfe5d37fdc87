"""A CUDA process with no framework: libcuda through ctypes (used by the GPU validation tests).

    python tests/gpu/cuda_child.py BYTES [--hold]

Initialises the CUDA driver API, lists the devices this process can see
(count and UUIDs, as ``CUDA_VISIBLE_DEVICES`` made them), creates a context
on device 0 and allocates ``BYTES``, then prints one JSON line::

    {"pid": 1234, "count": 1, "uuids": ["GPU-…"], "allocated": 1073741824,
     "free": …, "total": …}

With ``--hold`` it then waits for a line on stdin (or its end) before
freeing and exiting, so the parent can look at it from NVML. Any CUDA error
prints ``{"error": "cuInit: CUDA_ERROR_… (code)"}`` and exits 3; no
visible device prints ``count: 0`` and exits 0 without allocating.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys


class CudaError(Exception):
    pass


def _lib() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise CudaError(f"libcuda.so.1 cannot be loaded: {exc}") from None


def _check(cuda: ctypes.CDLL, name: str, rc: int) -> None:
    if rc != 0:
        text = ctypes.c_char_p()
        try:
            cuda.cuGetErrorName(rc, ctypes.byref(text))
            label = text.value.decode() if text.value else "?"
        except (AttributeError, OSError):
            label = "?"
        raise CudaError(f"{name}: {label} ({rc})")


def _uuid(raw: bytes, mig: bool) -> str:
    h = raw.hex()
    return f"{'MIG' if mig else 'GPU'}-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def run(nbytes: int, hold: bool) -> dict[str, object]:
    cuda = _lib()
    _check(cuda, "cuInit", cuda.cuInit(0))
    count = ctypes.c_int()
    _check(cuda, "cuDeviceGetCount", cuda.cuDeviceGetCount(ctypes.byref(count)))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    mig = visible.startswith("MIG-")
    uuids = []
    for i in range(count.value):
        dev = ctypes.c_int()
        _check(cuda, "cuDeviceGet", cuda.cuDeviceGet(ctypes.byref(dev), i))
        raw = (ctypes.c_ubyte * 16)()
        get = getattr(cuda, "cuDeviceGetUuid_v2", None) or cuda.cuDeviceGetUuid  # _v2 names MIG devices
        _check(cuda, "cuDeviceGetUuid", get(raw, dev))
        uuids.append(_uuid(bytes(raw), mig))
    out: dict[str, object] = {"pid": os.getpid(), "count": count.value, "uuids": uuids, "allocated": 0}
    if count.value == 0 or nbytes <= 0:
        return out
    dev = ctypes.c_int()
    _check(cuda, "cuDeviceGet", cuda.cuDeviceGet(ctypes.byref(dev), 0))
    ctx = ctypes.c_void_p()
    _check(cuda, "cuCtxCreate_v2", cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev))
    ptr = ctypes.c_uint64()
    _check(cuda, "cuMemAlloc_v2", cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(nbytes)))
    _check(cuda, "cuMemsetD8_v2", cuda.cuMemsetD8_v2(ptr, ctypes.c_ubyte(1), ctypes.c_size_t(nbytes)))  # touch it
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    _check(cuda, "cuMemGetInfo_v2", cuda.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)))
    out.update(allocated=nbytes, free=free.value, total=total.value)
    if hold:
        print(json.dumps(out), flush=True)
        sys.stdin.readline()
    cuda.cuMemFree_v2(ptr)
    cuda.cuCtxDestroy_v2(ctx)
    return out


def main(argv: list[str]) -> int:
    hold = "--hold" in argv
    args = [a for a in argv if a != "--hold"]
    try:
        out = run(int(args[0]) if args else 0, hold)
    except CudaError as exc:
        print(json.dumps({"pid": os.getpid(), "error": str(exc)}), flush=True)
        return 3
    if not hold:
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

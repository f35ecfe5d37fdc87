"""Content-defined chunking: cuts depend only on content since the previous cut.

That property is what makes deduplication of daily batches work: an append
keeps every earlier cut, an insert disturbs only the chunks around it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeorch.datasets.chunker import DEFAULT, ChunkParams, cut_points, iter_chunks

SMALL = ChunkParams(min_size=1024, avg_size=4096, max_size=16384)


def random_bytes(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def chunks_of(data: bytes, params: ChunkParams) -> list[bytes]:
    out, start = [], 0
    for end in cut_points(data, params):
        out.append(data[start:end])
        start = end
    return out


def test_cuts_cover_the_data_within_the_size_bounds():
    data = random_bytes(2_000_000)
    cuts = cut_points(data, SMALL)
    assert cuts[-1] == len(data)
    sizes = np.diff([0, *cuts])
    assert sizes[:-1].min() >= SMALL.min_size and sizes.max() <= SMALL.max_size
    assert 0.5 * SMALL.avg_size < sizes.mean() < 2 * SMALL.avg_size


def test_the_same_bytes_are_always_cut_the_same_way():
    data = random_bytes(500_000, seed=7)
    assert cut_points(data, SMALL) == cut_points(bytes(data), SMALL)


def test_an_append_keeps_every_cut_but_the_last():
    base = random_bytes(3_000_000, seed=2)
    grown = base + random_bytes(50_000, seed=3)
    before, after = cut_points(base, SMALL), cut_points(grown, SMALL)
    assert after[: len(before) - 1] == before[:-1]


def test_an_insert_changes_only_the_chunks_around_it():
    base = random_bytes(3_000_000, seed=4)
    edited = base[:1_500_000] + b"twelve bytes" + base[1_500_000:]
    old = set(chunks_of(base, SMALL))
    new = [c for c in chunks_of(edited, SMALL) if c not in old]
    assert sum(map(len, new)) <= 3 * SMALL.max_size  # the edited chunk and at most a couple after it


def test_empty_and_tiny_inputs():
    assert cut_points(b"", SMALL) == []
    assert cut_points(b"x", SMALL) == [1]
    assert cut_points(b"x" * SMALL.min_size, SMALL) == [SMALL.min_size]
    assert list(iter_chunks(io.BytesIO(b""), SMALL)) == []


def test_a_run_of_zeros_is_cut_at_max_size():
    cuts = cut_points(bytes(100_000), SMALL)
    assert np.diff([0, *cuts])[:-1].tolist() == [SMALL.max_size] * (len(cuts) - 1)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 300_000), read_size=st.sampled_from([2 * 16384, 40_000, 1 << 20]), seed=st.integers(0, 10))
def test_streaming_gives_the_cuts_of_the_whole_buffer(n, read_size, seed):
    data = random_bytes(n, seed)
    streamed = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, read_size=read_size)]
    assert streamed == chunks_of(data, SMALL)


def test_the_default_averages_about_its_average_size():
    cuts = cut_points(random_bytes(32 << 20, seed=5))
    assert 0.6 * DEFAULT.avg_size < (32 << 20) / len(cuts) < 1.6 * DEFAULT.avg_size


@pytest.mark.parametrize("bad", [dict(min_size=10, avg_size=4096, max_size=8192),
                                 dict(min_size=4096, avg_size=3000, max_size=8192),
                                 dict(min_size=4096, avg_size=8192, max_size=4096)])
def test_bad_params_are_refused(bad):
    with pytest.raises(ValueError):
        ChunkParams(**bad)


@pytest.mark.parametrize("hint", [0, 10, 20_000, 100_000])
def test_a_size_hint_never_changes_the_chunks(hint):
    data = random_bytes(150_000, seed=3)  # larger than most hints: the buffer must grow
    hinted = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, read_size=40_000, size_hint=hint)]
    assert hinted == chunks_of(data, SMALL)


def test_a_file_that_outgrows_its_hint_while_chunks_are_held():
    data = random_bytes(200_000, seed=4)
    # Views kept alive across the buffer's growth (their bytes are only valid until the next item, but
    # holding them must not break the iteration: the buffer grows by copy, never in place).
    held = list(iter_chunks(io.BytesIO(data), SMALL, read_size=40_000, size_hint=17_000))
    assert len(held) == len(chunks_of(data, SMALL))
    again = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, read_size=40_000, size_hint=17_000)]
    assert again == chunks_of(data, SMALL)

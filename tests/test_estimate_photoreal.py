"""The time estimate knows the photorealism term and the smoothing (issue 30)."""

import dataclasses

import pytest

from jaxnst.cli import estimate
from jaxnst.pipeline.options import make_options


def test_the_term_adds_its_share_of_an_evaluation_and_the_smoothing_its_steps():
    o = make_options(iterations=100)
    plain = estimate.seconds(500, 1000, 2, o, 2.0)
    real = estimate.seconds(500, 1000, 2, dataclasses.replace(o, photoreal_weight=(0.0, 1e8)), 2.0)
    assert real == pytest.approx(plain * (1 + estimate.PHOTOREAL_TERM))
    # (no photoreal_smooth in these options: estimated as off)
    smooth = dataclasses.replace(o, photoreal_weight=1e8)
    object.__setattr__(smooth, "photoreal_smooth", 1e3)  # (whether or not Options has it yet)
    steps = 11 * 1e3**0.5
    extra = 2.0 * 0.5 * estimate.SMOOTH_STEP * steps * 2
    assert estimate.seconds(500, 1000, 2, smooth, 2.0) == pytest.approx(real + extra)
    assert estimate.photoreal_mp(o) == (0.0, 0.0)


def test_the_preflight_counts_the_term_and_the_smoothing_and_offers_tiles_with_the_term(
    monkeypatch,
):
    from jaxnst.pipeline import memory

    o = make_options(iterations=10)
    assert memory.photoreal_bytes(2, o, (100, 200)) == 0
    real = dataclasses.replace(o, photoreal_weight=(0.0, 1e8))
    assert memory.photoreal_bytes(2, real, (100, 200)) == (15 + 64) * 4 * 100 * 200
    smooth = dataclasses.replace(o)
    object.__setattr__(smooth, "photoreal_smooth", 1e3)  # (whether or not Options has it yet)
    assert memory.photoreal_bytes(2, smooth, (100, 200)) == 57 * 4 * 100 * 200
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: (2**40, "test"))
    plain, with_term = (memory.check(512, 512, 2, x) for x in (o, real))
    assert with_term.step - plain.step == memory.photoreal_bytes(2, real, (512, 512))
    # too little memory: both are offered tiles (the term has its own, jaxnst.loss.matting_tiles)
    need = plain.step
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: (need * 9 // 10, "test"))
    assert memory.check(512, 512, 2, o).tile is not None
    tiles = memory.check(512, 512, 2, real)
    assert tiles.tile is not None
    assert memory.photoreal_bytes(2, real, (512, 512), tiles.tile) == (
        (31 + 24) * 4 * 512 * 512 + 2 * 128 * (tiles.tile + 4) ** 2
    )

"""m-tiles never hold more rows than exist (``Corrections.tile_rows``): in corrected and
relaxed mode a workload of ``T`` tokens costs the same on every m-tile ``>= T``; paper mode
keeps charging full tiles (its exactness is tests/test_costmodel_paper.py's)."""

import pytest

import costmodel as cm
from costmodel.workload import FocusStats

#: Report fields that describe the silicon as built (the buffers scale with the m-tile).
SILICON = ("area_mm2", "onchip_power_mW")


def _workloads():
    small = cm.ModelShape.load("qwen2-0.5b")
    big = cm.ModelShape.load("llava_vid")
    demo = cm.ModelShape(
        "demo", hidden_size=128, intermediate_size=384, num_heads=4, num_kv_heads=2, num_layers=4, head_dim=32
    )
    out = []
    for shape, visual, text, decode, sec in (
        (demo, 128.0, 17.0, 2, ((3,), (0.25,))),
        (small, 1568.0, 40.0, 0, ((2, 5, 8, 16), (0.4, 0.3, 0.2, 0.15))),
        (big, 3136.0, 128.0, 4, ((3, 6, 9, 18, 26), (0.4, 0.3, 0.2, 0.15, 0.1))),
    ):
        stats = FocusStats.from_schedule(shape, visual, *sec, similar_fraction=(0.3, 0.5, 0.2, 0.4, 0.1))
        wl = cm.Workload(shape, visual, frames=8.0, text_tokens=text, decode_tokens=decode, focus=stats)
        out.append(wl.replace(adaptiv_sparsity=0.5, cmc_sparsity=(0.5, 0.6, 0.5)))
    return out


WORKLOADS = _workloads()


def _tiles(wl):
    t = wl.visual_tokens + wl.text_tokens
    return [t, 2 * t + 3, 8192.0, 16384.0]


@pytest.mark.parametrize("kind", cm.KINDS)
@pytest.mark.parametrize("index", range(len(WORKLOADS)))
def test_corrected_cost_is_the_same_on_every_tile_at_least_t(kind, index):
    wl = WORKLOADS[index]
    reports = [cm.simulate(cm.accelerator(kind, m_tile=m), wl, mode="corrected") for m in _tiles(wl)]
    first = reports[0]._asdict()
    for rep in reports[1:]:
        for field, value in rep._asdict().items():
            if field not in SILICON:
                assert value == pytest.approx(first[field], rel=1e-12, abs=1e-12), (kind, field)


@pytest.mark.parametrize("kind", ("focus", "sec-only", "dense"))
@pytest.mark.parametrize("index", (0, 1))
def test_relaxed_cost_is_the_same_on_tiles_well_above_t(kind, index):
    """At the default temperature the smooth min(m_tile, rows) has its corner at m_tile = T
    (there it is within 2 %); from 2T on the cost no longer moves."""
    wl = WORKLOADS[index]
    reports = [cm.simulate(cm.accelerator(kind, m_tile=m), wl, mode="relaxed") for m in _tiles(wl)]
    for rep in reports[2:]:
        assert rep.time_s == pytest.approx(reports[1].time_s, rel=1e-6)
        assert rep.energy_total_mJ == pytest.approx(reports[1].energy_total_mJ, rel=1e-6)
    assert reports[0].energy_total_mJ == pytest.approx(reports[1].energy_total_mJ, rel=2e-2)


def test_tile_rows_is_what_makes_the_short_prompt_cheaper():
    """Without the correction a 145-token prompt pays a full 1024-row gather per GEMM; with
    it, Focus' stalls and energy fall, and paper mode (defect kept) still charges m rows."""
    import dataclasses

    from costmodel.corrections import ALL

    wl = WORKLOADS[0]
    hw = cm.focus()
    fixed = cm.simulate(hw, wl, mode="corrected")
    full_tiles = cm.simulate(hw, wl, mode="corrected", corrections=dataclasses.replace(ALL, tile_rows=False))
    assert fixed.stall_cycles < full_tiles.stall_cycles
    assert fixed.energy_total_mJ < full_tiles.energy_total_mJ
    visual = wl.replace(text_tokens=0.0, decode_tokens=0)
    paper = [cm.simulate(cm.focus(m_tile=m), visual, mode="paper").total_cycles for m in (1024.0, 2048.0)]
    assert paper[1] > paper[0]

"""Helpers shared by the cocotb testbenches (run inside the simulator)."""

from __future__ import annotations

import os

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

CLOCK_NS = 10


def load_stimulus() -> dict:
    with np.load(os.environ["RTLGEN_IN"]) as data:
        return {k: data[k] for k in data.files}


def save_result(**arrays) -> None:
    np.savez(os.environ["RTLGEN_OUT"], **{k: np.asarray(v) for k, v in arrays.items()})


def pack(values, width: int) -> int:
    """Lanes (lane 0 in the low bits) -> one unsigned bus value."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def unpack(bus: int, lanes: int, width: int, signed: bool = True) -> list[int]:
    """One bus value -> ``lanes`` integers (two's complement when ``signed``)."""
    mask = (1 << width) - 1
    out = []
    for i in range(lanes):
        v = (bus >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


async def start(dut):
    """Start the clock, hold reset two cycles; returns at a falling edge (drive point)."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


def value(signal, unknown_as_zero: bool = False) -> int:
    """The signal as an unsigned int; with ``unknown_as_zero``, X/Z bits read as 0 (registers
    without reset that no valid beat has written yet)."""
    if unknown_as_zero:
        bits = str(signal.value).lower().replace("x", "0").replace("z", "0")
        return int(bits, 2)
    return int(signal.value)

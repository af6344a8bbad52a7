"""The scripted batch loop's random numbers: SplitMix64 over torch int64, checked against a plain
Python reference and for uniformity."""

from __future__ import annotations

import torch

from app.engine import mix, uniform

MASK = (1 << 64) - 1


def splitmix64_output(x: int) -> int:
    """Reference: SplitMix64's output function on unsigned 64-bit integers."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def to_signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def test_mix_matches_the_reference_bit_for_bit() -> None:
    keys = [0, 1, 2, 12345, -1, -(1 << 63), (1 << 63) - 1, 0x9E3779B97F4A7C15 - (1 << 64)]
    got = mix(torch.tensor(keys, dtype=torch.long)).tolist()
    assert got == [to_signed(splitmix64_output(k & MASK)) for k in keys]


def test_uniforms_are_uniform_and_in_range() -> None:
    u = uniform(torch.arange(200_000, dtype=torch.long) * 0x2545F4914F6CDD1D)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.003
    counts = torch.histc(u.float(), bins=20, min=0, max=1)
    expected = 200_000 / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45  # 19 degrees of freedom: p ~ 0.001 at 43.8

"""Throughput of the training loop: image tokens and model FLOPs per step, and MFU against the device's peak.

MFU is the model FLOPs (a DiT's from `dit_training/flops.py`) per second over the dense bf16 peak of the devices;
it is only reported where that peak is known (GPUs and TPUs in `PEAK_FLOPS`, not the CPU).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax

# Dense bf16 matmul peak per device (FLOP/s), by a substring of `device.device_kind`; first match wins.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("B200", 2250e12), ("A100", 312e12),
    ("L40S", 362e12), ("L4", 121e12),
    ("TPU v4", 275e12), ("TPU v5 lite", 197e12), ("TPU v5e", 197e12), ("TPU v5", 459e12),
    ("TPU v6 lite", 918e12), ("TPU v6e", 918e12),
)


def peak_flops(device: jax.Device) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None when unknown (e.g. a CPU)."""
    if device.platform == "cpu":
        return None
    return next((peak for name, peak in PEAK_FLOPS if name in device.device_kind), None)


class StepCost(NamedTuple):
    tokens: int  # DiT: image tokens (2x2 latent patches) it sees, history included; VAE: latent positions
    flops: int | None  # model FLOPs of the step (forward + backward); None without a DiT config


def throughput_report(steps: int, seconds: float, tokens: int, flops: int | None,
                      devices: Sequence[jax.Device]) -> str:
    """`x steps/s y tokens/s`, then `z TFLOP/s/device` when FLOPs are known and `MFU w%` when the peak is."""
    parts = [f"{steps / seconds:.2f} steps/s", f"{tokens / seconds:.0f} tokens/s"]
    if flops is not None:
        per_device = flops / seconds / len(devices)
        parts.append(f"{per_device / 1e12:.3g} TFLOP/s/device")
        peak = peak_flops(devices[0])
        if peak is not None:
            parts.append(f"MFU {100 * per_device / peak:.1f}%")
    return " ".join(parts)

"""Shipped per-CPU-family choices for ``precision="auto"`` (issue 33), so that a first run on a
known family times nothing. :func:`jaxnst.model.convs.shipped_defaults` picks the entry whose
``vendor`` and ``family`` (and ``models``, where given) match ``/proc/cpuinfo``, whose ``flags``
the CPU has and whose ``absent`` flags it lacks. ``timings`` are seconds per candidate, keyed like
the cache (``"C_INxC_OUT@BUCKET"``, :func:`jaxnst.model.convs.plan_key`); a key not listed takes
``default``. Regenerate an entry on the CPU itself with ``python scripts/conv_defaults.py``.
"""

from __future__ import annotations

# Measured on an AMD EPYC (family 25 model 17, Zen 4 "Genoa", 2 cores of a VM whose model name is
# just "AMD EPYC"), jax 0.10.2, 2026-12-06, with `python scripts/conv_defaults.py` (every candidate
# at the buckets of 128x128 .. 768x512 px photos, 48 keys, best of 3; the other core busy): the
# fastest bf16x3 form over float32 XLA per key, below. float32 won 46 of 48; the two exceptions
# (128x256@10 at 0.89, 512x256@10 at 0.99, both 32x32 px layers) were noise: timed again best of
# 30, taps9:bf16x3 took 1.9-3.4x float32's time there. As expected: AVX512-BF16's VDPBF16PS does
# at most twice float32's multiply-adds per instruction and bf16x3 three times the products, so it
# cannot win on this family; only AMX (Sapphire Rapids and later Xeons) leaves it room.
ZEN4_BF16X3_OVER_FP32 = {
    "512x512@6": 2.67,
    "256x512@8": 1.99,
    "512x256@8": 2.24,
    "512x512@8": 1.91,
    "512x512@9": 2.0,
    "128x256@10": 0.89,
    "256x128@10": 1.49,
    "256x256@10": 1.35,
    "256x512@10": 2.72,
    "512x256@10": 0.99,
    "512x512@10": 1.76,
    "256x512@11": 1.18,
    "512x256@11": 1.75,
    "512x512@11": 2.15,
    "128x128@12": 1.94,
    "128x256@12": 2.15,
    "128x64@12": 1.9,
    "256x128@12": 1.8,
    "256x256@12": 2.48,
    "256x512@12": 2.36,
    "512x256@12": 3.01,
    "512x512@12": 2.04,
    "64x128@12": 2.12,
    "128x256@13": 1.74,
    "256x128@13": 2.66,
    "256x256@13": 2.51,
    "128x128@14": 4.1,
    "128x256@14": 3.66,
    "128x64@14": 3.69,
    "256x128@14": 3.73,
    "256x256@14": 2.68,
    "3x64@14": 2.3,
    "64x128@14": 3.17,
    "64x3@14": 4.99,
    "64x64@14": 5.17,
    "128x128@15": 2.88,
    "128x64@15": 3.37,
    "64x128@15": 3.42,
    "128x128@16": 3.75,
    "128x64@16": 2.41,
    "3x64@16": 1.33,
    "64x128@16": 3.8,
    "64x3@16": 9.2,
    "64x64@16": 2.43,
    "3x64@17": 2.27,
    "64x3@17": 8.32,
    "64x64@17": 4.0,
}

ZEN4: dict = {
    "name": "AMD Zen 4 (family 25 with AVX512-BF16): EPYC 9004/8004, Ryzen 7000",
    "vendor": "AuthenticAMD",
    "family": 25,  # (Zen 3 is family 25 too, without AVX-512: it has no bf16 candidates at all)
    "flags": ["avx512_bf16"],
    "absent": ["amx_bf16"],
    "default": "xla:fp32",  # every key (no "timings": the measurement above chose float32)
}

FAMILIES: tuple[dict, ...] = (ZEN4,)

"""Which CPU this is, for :mod:`jaxnst.model.convs`' plans: vendor, family, model, name and
feature flags from /proc/cpuinfo, whether it has bf16 dot instructions, and the plan defaults
shipped for its family (:mod:`jaxnst.model.conv_defaults`); and the cache of the plans measured on
it."""

from __future__ import annotations

import json
import os
from typing import NamedTuple


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


# The instructions a bf16 dot can use: x86 AMX-BF16 and AVX512-BF16, Arm's BF16 (BFDOT/BFMMLA).
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})


class Cpu(NamedTuple):
    """What identifies a CPU for the plans: ``vendor`` (``vendor_id``, or Arm's implementer),
    ``family`` and ``model`` (x86 ``cpu family``/``model``, Arm's part; -1 where unknown), the
    model ``name`` (a VM may show only "AMD EPYC": never enough alone) and the feature ``flags``."""

    vendor: str
    family: int
    model: int
    name: str
    flags: frozenset[str]


def _number(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        return -1


CPUINFO = "/proc/cpuinfo"  # (tests point it at another CPU's)


def cpu_info() -> Cpu:
    """This CPU, from the first processor of /proc/cpuinfo. ``JAXNST_CPU_BF16=1`` makes it a CPU
    with AMX-BF16 (every candidate, timed, no shipped defaults), ``0`` one without bf16
    instructions (tests, experiments)."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO) as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                fields.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    flags = frozenset((fields.get("flags") or fields.get("Features") or "").split())
    forced = os.environ.get("JAXNST_CPU_BF16")
    if forced == "1":
        flags = flags | {"amx_bf16"}
    elif forced == "0":
        flags = flags - BF16_FLAGS
    return Cpu(
        vendor=fields.get("vendor_id") or fields.get("CPU implementer") or "unknown",
        family=_number(fields.get("cpu family", "-1")),
        model=_number(fields.get("model") or fields.get("CPU part") or "-1"),
        name=fields.get("model name", "unknown cpu"),
        flags=flags,
    )


def cpu_id(cpu: Cpu) -> str:
    """The cache's name for a CPU: vendor, family/model, model name and its bf16 flags."""
    bf16 = ",".join(sorted(cpu.flags & BF16_FLAGS)) or "no bf16"
    return f"{cpu.vendor} {cpu.family}/{cpu.model} {cpu.name} ({bf16})"


def cpu_has_bf16_units() -> bool:
    """True on an x86 CPU with AMX-BF16 or AVX512-BF16, or an Arm CPU with BF16 dot
    instructions. ``JAXNST_CPU_BF16=1``/``0`` overrides the detection (tests, experiments)."""
    return bool(cpu_info().flags & BF16_FLAGS)


def shipped_defaults(cpu: Cpu) -> dict | None:
    """The entry of :data:`jaxnst.model.conv_defaults.FAMILIES` that describes ``cpu``: same
    vendor and family (and model, where the entry names models), every flag it requires and none
    it rules out. Model names are not matched (virtual machines shorten them)."""
    from jaxnst.model.conv_defaults import FAMILIES

    for entry in FAMILIES:
        if (
            entry["vendor"] == cpu.vendor
            and entry["family"] == cpu.family
            and (not entry.get("models") or cpu.model in entry["models"])
            and set(entry.get("flags", ())) <= cpu.flags
            and not set(entry.get("absent", ())) & cpu.flags
        ):
            return entry
    return None


def _cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxnst", "conv_plans.json")


def load_cache() -> dict:
    """This user's measured plans (``$XDG_CACHE_HOME/jaxnst/conv_plans.json``; {} if none)."""
    try:
        with open(_cache_path()) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(cache, dict):
        return {}
    return {k: v for k, v in cache.items() if isinstance(v, dict)}  # (not issue 22's flat keys)


def save_cache(cache: dict) -> None:
    """Write the measured plans atomically (an unwritable cache is ignored)."""
    path = _cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(cache, f, indent=1)
        os.replace(tmp, path)
    except OSError:  # an unwritable cache only costs the timing next time
        pass

"""Issue 33: precision="auto" times convolution forms only where one can win, keys its plans by
layer and size bucket, bounds the timing, and uses the defaults shipped for a known CPU family.
The CPUs are faked (a /proc/cpuinfo of our own) and nothing here compiles a convolution: a timing
that should not happen raises."""

import json
import math

import pytest

from jaxnst.model import conv_defaults, convs, vgg
from jaxnst.model import cpu as cpu_module

LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")
CH = vgg.CHANNELS


def cpuinfo(vendor, family, model, name, flags):
    return (
        f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        f"model name\t: {name}\nflags\t\t: fpu sse sse2 avx avx2 fma {' '.join(flags)}\n\n"
        f"processor\t: 1\nvendor_id\t: {vendor}\n"
    )


# The issue author's AVX2 EPYC and this session's Zen 4 EPYC both call themselves "AMD EPYC".
AVX2_EPYC = cpuinfo("AuthenticAMD", 23, 49, "AMD EPYC", [])  # Zen 2: no bf16 instructions
ZEN4_EPYC = cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC", ["avx512f", "avx512_bf16"])
ZEN4_RYZEN = cpuinfo("AuthenticAMD", 25, 97, "AMD Ryzen 9 7950X", ["avx512f", "avx512_bf16"])
ZEN5_EPYC = cpuinfo("AuthenticAMD", 26, 2, "AMD EPYC", ["avx512f", "avx512_bf16"])
ARM = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: {part}\nFeatures\t: {flags}\n"
SPR_XEON = cpuinfo(
    "GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8481C", ["avx512_bf16", "amx_bf16"]
)


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """Point jaxnst at a fake /proc/cpuinfo and an empty cache; returns the setter."""
    monkeypatch.delenv("JAXNST_CPU_BF16", raising=False)  # (conftest's "0" would hide the flags)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def use(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(cpu_module, "CPUINFO", str(path))
        return convs.cpu_info()

    return use


@pytest.fixture
def timings(monkeypatch):
    """A fake ``time_conv``: xla:fp32 at 1 s per GFLOP, bf16x3 forms 1.2x that except row3 0.5x
    for layers of >= 256 channels; records what was timed."""
    calls = []

    def fake(shape, spec, reps=3):
        calls.append((shape, spec))
        t = convs._flops(shape) / 1e9
        if spec == convs.FP32:
            return t
        return t * (0.5 if spec.startswith("row3") and min(shape[2:]) >= 256 else 1.2)

    monkeypatch.setattr(convs, "time_conv", fake)
    return calls


def no_timing(monkeypatch):
    def refuse(shape, spec, reps=3):
        raise AssertionError(f"timed {spec} at {shape}")

    monkeypatch.setattr(convs, "time_conv", refuse)


def test_cpu_identity_reads_vendor_family_model_and_flags(cpu):
    a, b = cpu(AVX2_EPYC), cpu(ZEN4_EPYC)
    assert (a.vendor, a.family, a.model, a.name) == ("AuthenticAMD", 23, 49, "AMD EPYC")
    assert (b.family, b.model) == (25, 17) and "avx512_bf16" in b.flags
    assert convs.cpu_id(a) != convs.cpu_id(b)  # one model name, two cache entries


@pytest.mark.parametrize(
    "text, want",
    [
        (AVX2_EPYC, (convs.FP32,)),
        (ZEN4_EPYC, convs.CANDIDATES),
        (SPR_XEON, convs.CANDIDATES),
        (
            "CPU implementer\t: 0x41\nCPU part\t: 0xd40\nFeatures\t: fp asimd bf16\n",
            convs.CANDIDATES,
        ),
        ("CPU implementer\t: 0x41\nCPU part\t: 0xd0c\nFeatures\t: fp asimd\n", (convs.FP32,)),
    ],
)
def test_candidates_follow_the_flags(cpu, text, want):
    assert convs.candidates_for(cpu(text)) == want


def test_env_override_adds_or_removes_the_bf16_flags(cpu, monkeypatch):
    monkeypatch.setenv("JAXNST_CPU_BF16", "0")
    assert convs.candidates_for(cpu(SPR_XEON)) == (convs.FP32,)
    monkeypatch.setenv("JAXNST_CPU_BF16", "1")
    c = cpu(AVX2_EPYC)
    assert "amx_bf16" in c.flags and convs.shipped_defaults(c) is None


def test_nothing_is_timed_where_nothing_can_win(cpu, monkeypatch, tmp_path):
    cpu(AVX2_EPYC)
    no_timing(monkeypatch)
    assert convs.resolve("auto", 255, 384, LAYERS, CH) == ("fp32", None)
    assert convs.pending_seconds(255, 384, LAYERS, CH, eval_seconds=2.0) == 0
    assert not (tmp_path / "jaxnst" / "conv_plans.json").exists()


def test_shipped_defaults_cover_zen4_and_time_nothing(cpu, monkeypatch, tmp_path):
    no_timing(monkeypatch)
    for text in (ZEN4_EPYC, ZEN4_RYZEN):
        entry = convs.shipped_defaults(cpu(text))
        assert entry is not None and "Zen 4" in entry["name"]
        for size in ((255, 384), (512, 512), (96, 128), (1536, 2048)):
            assert convs.resolve("auto", *size, LAYERS, CH) == ("fp32", None), size
            assert convs.pending_seconds(*size, LAYERS, CH) == 0
    assert not (tmp_path / "jaxnst" / "conv_plans.json").exists()
    # not what was measured: Zen 5 (family 26), a family-25 CPU with AMX, or one whose VM hides
    # avx512_bf16 (float32 at once there: no candidate but float32)
    assert convs.shipped_defaults(cpu(ZEN5_EPYC)) is None
    assert convs.shipped_defaults(cpu(ZEN4_EPYC.replace("avx512_bf16", "amx_bf16"))) is None
    assert convs.shipped_defaults(cpu(ZEN4_EPYC.replace("avx512_bf16", ""))) is None
    assert convs.candidates_for(cpu(ZEN4_EPYC.replace("avx512_bf16", ""))) == (convs.FP32,)


def test_shipped_timings_choose_per_key(cpu, monkeypatch):
    """A family's timings pick the form per layer key; keys it lacks take its default."""
    entry = {
        "name": "test family",
        "vendor": "GenuineIntel",
        "family": 6,
        "models": [143],
        "flags": ["amx_bf16"],
        "default": convs.FP32,
        "timings": {"512x512@10": {convs.FP32: 1.0, "row3:bf16x3": 0.5, "taps9:bf16x3": 0.95}},
    }
    monkeypatch.setattr(conv_defaults, "FAMILIES", (entry,))
    assert convs.shipped_defaults(cpu(SPR_XEON.replace(": 143", ": 207"))) is None
    assert convs.shipped_defaults(cpu(SPR_XEON)) is entry
    no_timing(monkeypatch)
    _, plan = convs.resolve("auto", 256, 256, LAYERS, CH)  # conv4_2: 32x32, bucket 10
    assert plan is not None
    assert plan[vgg.LAYERS.index("conv4_2")] == ("row3:bf16x3", "row3:bf16x3")
    assert plan[vgg.LAYERS.index("conv4_1")] == (convs.FP32, convs.FP32)  # 256x512: default
    entry["timings"]["512x512@10"]["row3:bf16x3"] = 0.95  # within the margin: fp32 stays
    assert convs.resolve("auto", 256, 256, LAYERS, CH) == ("fp32", None)


def test_buckets_are_octaves_of_pixels_up_to_a_cap():
    assert convs.bucket(255, 384) == convs.bucket(260, 400) == 16
    assert convs.bucket(256, 256) == 16 and convs.bucket(255, 256) == 15
    assert convs.bucket(1536, 2048) == convs.bucket(512, 256) == convs.BUCKET_CAP
    assert convs.bucket_shape(15, 64, 128) == (128, 256, 64, 128)
    assert convs.plan_key((63, 96, 256, 512)) == "256x512@12"


def test_a_new_size_reuses_its_buckets_plans(cpu, timings, tmp_path):
    cpu(SPR_XEON)
    _, plan = convs.resolve("auto", 255, 384, LAYERS, CH)
    n = len(timings)
    assert n > 0
    assert {s for _, s in timings} == set(convs.CANDIDATES)
    # timed at the buckets' shapes, not the photo's
    assert all(h & (h - 1) == 0 and w & (w - 1) == 0 for (h, w, _, _), _ in timings)
    assert plan is not None and plan[vgg.LAYERS.index("conv4_2")] == ("row3:bf16x3",) * 2
    assert plan[0] == (convs.FP32, convs.FP32)
    # 260x400: every layer in the same buckets as 255x384, nothing timed
    assert convs.resolve("auto", 260, 400, LAYERS, CH) == ("fp32", plan)
    assert len(timings) == n
    assert convs.pending_seconds(260, 400, LAYERS, CH) == 0
    # 512x512 px: new buckets, timed (within the budget), kept beside the first
    assert convs.pending_seconds(512, 512, LAYERS, CH) > 0
    convs.resolve("auto", 512, 512, LAYERS, CH, budget=math.inf)
    assert len(timings) > n
    cache = json.loads((tmp_path / "jaxnst" / "conv_plans.json").read_text())
    (records,) = cache.values()
    assert "512x512@10" in records and "512x512@12" in records


def test_timing_stops_at_its_budget_heaviest_layers_first(cpu, monkeypatch):
    """Each timed form costs 1 s (a fake clock); the bound is 5 % of 500 evaluations guessed from
    the float32 rate. What does not fit stays float32 and untimed (a later run or the warm-up)."""
    cpu(SPR_XEON)
    clock = [0.0]
    monkeypatch.setattr(convs, "_clock", lambda: clock[0])
    needs = convs._needs(128, 128, LAYERS, CH, convs.CANDIDATES)
    total = sum(convs._flops(n.shape) for pair in needs for n in pair)
    rate = convs.TIMING_SHARE * convs.RUN_ITERATIONS * total / 12.0  # -> a 12 s budget
    timed = []

    def fake(shape, spec, reps=3):
        clock[0] += 1.0
        timed.append((shape, spec))
        fp32 = convs._flops(shape) / rate
        return fp32 * (0.5 if spec == "row3:bf16x3" else 1.0 if spec == convs.FP32 else 1.2)

    monkeypatch.setattr(convs, "time_conv", fake)
    _, plan = convs.resolve("auto", 128, 128, LAYERS, CH)
    assert 5 <= len(timed) <= 12  # (the first float32 rate, then whole keys while they fit)
    weight: dict[str, float] = {}
    for pair in needs:
        for n in pair:
            weight[n.key] = weight.get(n.key, 0.0) + convs._flops(n.shape)
    heaviest = sorted(weight, key=lambda k: -weight[k])
    keys = list(dict.fromkeys(convs.plan_key(s) for s, _ in timed))
    assert keys == heaviest[: len(keys)] and len(keys) < len(heaviest)
    assert plan is not None and convs.FP32 in {f for p in plan for f in p}  # untimed: fp32
    left = convs.pending_seconds(128, 128, LAYERS, CH)
    assert left > 0
    # the warm-up's unbounded budget times the rest; afterwards nothing is pending
    convs.resolve("auto", 128, 128, LAYERS, CH, budget=math.inf)
    assert convs.pending_seconds(128, 128, LAYERS, CH) == 0


def test_pending_seconds_is_bounded_by_the_share_of_a_run(cpu):
    cpu(SPR_XEON)
    free = convs.pending_seconds(384, 384, LAYERS, CH)
    assert free > 0
    assert convs.pending_seconds(384, 384, LAYERS, CH, eval_seconds=0.01) == pytest.approx(
        convs.TIMING_SHARE * convs.RUN_ITERATIONS * 0.01
    )


def test_time_estimate_counts_the_timing_that_remains(cpu, timings, small_vars):
    """The CLI's estimate adds the forms still to time (each stage bounded by its share of a
    run), and its speed probe measures float32 rather than time forms at 256 px itself."""
    from jaxnst.cli import estimate
    from jaxnst.pipeline.options import make_options

    o = make_options(iterations=3)

    class Inputs:
        variables = small_vars

    cpu(AVX2_EPYC)
    assert estimate.form_timing(255, 384, o, small_vars, per_megapixel=20.0) == 0
    cpu(SPR_XEON)
    pending = estimate.form_timing(255, 384, o, small_vars, per_megapixel=20.0)
    assert pending > 0
    assert pending <= convs.TIMING_SHARE * convs.RUN_ITERATIONS * 20.0 * 255 * 384 / 1e6
    assert estimate._probe_precision("auto", o, Inputs) == "fp32"
    assert timings == []  # (neither timed anything)
    convs.resolve("auto", 255, 384, estimate._layers(o), vgg.channels_of(small_vars), math.inf)
    assert estimate.form_timing(255, 384, o, small_vars, per_megapixel=20.0) == 0
    tiled = make_options(iterations=3, tile=128)
    assert estimate.form_timing(255, 384, tiled, small_vars, per_megapixel=20.0) == 0

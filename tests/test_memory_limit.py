"""The memory preflight under a hard limit (issue 22): a tiled descent runs in a process whose
data segment (``RLIMIT_DATA``: heap and private mappings, where XLA's buffers live) may grow by
no more than the preflight's own estimate of the descent's step. An underestimate kills the run
(std::bad_alloc) and fails the test, instead of a user's run at 4096 px."""

import os
import subprocess
import sys
import textwrap

import pytest

# Both parts run in a fresh process: the limit must not outlive it, and the run must start cold
# (compiling is part of the peak).
PREAMBLE = """
import resource
def status(k):
    for line in open("/proc/self/status"):
        if line.startswith(k):
            return int(line.split()[1]) * 1024
def limit(extra):
    lim = int(status("VmData") + extra)
    resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
"""

DESCENT = """
import numpy as np
from jaxnst.model import vgg, weights
from jaxnst.pipeline import memory
from jaxnst.pipeline.options import make_options
from jaxnst.stylize import stylize
variables, _ = weights.load_variables(fetch=False)
rng = np.random.default_rng(0)
c, s = (rng.uniform(size=(192, 256, 3)).astype(np.float32) for _ in range(2))
o = make_options(tile=128, iterations=1)
est = memory.check(192, 256, 1, o, vgg.channels_of(variables))
before = status("VmData")
limit(est.step)
r = stylize(c, s, variables=variables, tile=128, iterations=1, chunk=1)
assert np.isfinite(r.image).all() and r.evaluations >= 2
grew = (status("VmData") - before) / est.step
print("grew", grew, "peak", status("VmHWM") / (est.resident + est.step))
"""


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAXNST_MEMORY_LIMIT="64G", JAXNST_CPU_BF16="0")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PREAMBLE + code)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_the_limit_bites():
    """The control: under the same limit a 256 MiB allocation fails (the limit is real)."""
    p = _run("import numpy as np\nlimit(64 * 2**20)\nnp.ones(2**25)\n")
    assert p.returncode != 0 and "MemoryError" in p.stderr, p.stderr[-500:]


@pytest.mark.slow  # real weights, a tiled descent compiled in a fresh process (~30 s)
def test_a_tiled_descent_stays_within_the_preflight_estimate(real_vars):
    """2 x 2 tiles of 128 px (the second row ragged) with 96 px halos: a step's memory is a
    tile's, so the ratios below were the same at 288x384 px (3 x 2 tiles, twice the time)."""
    p = _run(DESCENT)
    assert p.returncode == 0, p.stderr[-800:]
    grew, peak = (float(x) for x in p.stdout.split()[1::2])
    # Measured: the data segment grew by 0.54 of the step estimate and peak RSS was 0.77 of the
    # peak estimate, on a Xeon (2 cores) at 192x256 as at 288x384 px (0.55, 0.77), and on an AMD
    # EPYC (2 cores) at 192x256 px (0.54 / 0.56, 0.77 / 0.80 in two runs). The model errs on the
    # safe side by ~30 % of the peak. The lower bounds sit ~15-20 % below what was measured: an
    # overestimate of the activations by 2x (grew 0.37, peak 0.57) fails here as an underestimate
    # does (above 1, or killed); a step estimate 25 % too large still passes (0.48, 0.70).
    assert 0.45 <= grew <= 1.0 and 0.65 <= peak <= 1.0, p.stdout

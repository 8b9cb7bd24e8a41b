"""Stage 3 of the pipeline, **layout**: which member of the batch sits where.

In: a :class:`~jaxnst.pipeline.prepare.Problem`. Out: a :class:`Layout` (the sweep grid times the
content images gives the members; this process takes a contiguous share, padded so every device
holds the same number of rows) and, from it, a :class:`Batch`: this process's starting images,
targets, loss weights and static settings, placed (sharded along the batch axis) on its local
devices.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import losses
from jaxnst.model import convs, vgg
from jaxnst.optim import optimize, param
from jaxnst.pipeline.options import SWEEPABLE, Options
from jaxnst.pipeline.prepare import Problem, as_image, as_images


class Layout(NamedTuple):
    """Members (all processes) and rows (this process's batch, padded)."""

    names: tuple[str, ...]  # the swept options, in SWEEPABLE order
    values: dict[str, np.ndarray]  # every SWEEPABLE option's value per member, (n,)
    content_index: np.ndarray  # (n,) the content image of each member
    n: int  # members in all processes
    m: int  # members this process runs (rows before padding)
    rows: np.ndarray  # (m + padding,) int32 member index of each row
    mesh: jax.sharding.Mesh | None  # 1-D mesh "batch" over the local devices (None: one device)
    n_dev: int  # local devices the batch is split over
    batched: bool  # a sweep or several contents: results keep a batch axis


class Batch(NamedTuple):
    """This process's rows, ready for :func:`jaxnst.optim.optimize.descend`."""

    images0: jax.Array  # (rows, H, W, 3) starting images
    variables: dict  # VGG19 variables with the backward kernels added
    targets: losses.Targets  # content targets gathered per row
    hyper: optimize.Hyper  # per-row loss weights; learning rate, iterations, EMA
    config: optimize.Config  # static settings (a change compiles a new program)


def make_layout(problem: Problem) -> Layout:
    """Members = content images (slowest) x sweep grid; this process's share; device padding."""
    o = problem.options
    names, grid = sweep_grid(o)
    n_c, n_g = problem.contents.shape[0], grid.shape[0]
    n = n_c * n_g
    values = {
        k: np.repeat(v[None], n_c, 0).reshape(-1) for k, v in _member_values(o, names, grid).items()
    }
    content_index = np.repeat(np.arange(n_c), n_g)
    mine = process_share(n)  # this process's members (all of them in a one-process run)
    m = len(mine)
    mesh, n_dev = _sharding(m)
    rows = np.concatenate([mine, np.full((-m) % n_dev, mine[-1])]).astype(np.int32)
    return Layout(
        names, values, content_index, n, m, rows, mesh, n_dev, problem.many_contents or bool(names)
    )


def _interruptible(lay: Layout, o: Options) -> bool:
    """Whether the descent program reads Ctrl-C's flag after each evaluation and tile
    (:mod:`jaxnst._interrupt`): tiled runs (minutes per evaluation), in one process on unsharded
    data (a sharded program would call it once per device). Not the others: a program with a
    host callback never enters JAX's persistent compile cache, and their Ctrl-C is answered by
    leaving the chunk running (the CLI exits without waiting for it)."""
    return bool(o.tile) and lay.mesh is None and jax.process_count() == 1


def place(problem: Problem, lay: Layout) -> Batch:
    """Build this process's batch and put it on the devices (rows sharded, the rest replicated)."""
    o, idx = problem.options, lay.rows
    t = problem.targets
    members = lay.content_index[idx]
    targets = t._replace(content={k: take_rows(v, members) for k, v in t.content.items()})
    if t.matting is not None:
        targets = targets._replace(matting=jax.tree.map(lambda a: take_rows(a, members), t.matting))
    if t.nnst is not None:  # NNST's targets: one set per content
        targets = targets._replace(nnst=jax.tree.map(lambda a: take_rows(a, members), t.nnst))
    if t.sampled is not None and t.sampled.content is not None:
        targets = targets._replace(
            sampled=t.sampled._replace(content=take_rows(t.sampled.content, members))
        )

    # Host values go to the device with device_put: jnp.asarray and jnp.float32 on host values
    # are each a small XLA program, compiled (or looked up in the cache) before the descent.
    def row(k: str) -> jax.Array:
        return jax.device_put(np.asarray(lay.values[k][idx], np.float32))

    hyper = optimize.Hyper(
        weights=losses.Weights(
            *(row("content_weight"), row("style_weight"), row("tv_weight")),
            photoreal=None if t.matting is None else row("photoreal_weight"),
        ),
        learning_rate=jax.device_put(np.float32(o.learning_rate / _levels(o, problem))),
        iterations=jax.device_put(np.int32(o.iterations)),
        ema_decay=jax.device_put(np.float32(o.ema_decay or 0.0)),
        keys=None if t.sampled is None and t.nnst_final is None else _sample_keys(o, lay, idx),
    )
    h, w = problem.contents.shape[1:3]
    channels = vgg.channels_of(problem.variables)
    precision, plan = convs.resolve(
        "fp32" if o.tile else o.precision, h, w, problem.layers, channels
    )
    config = optimize.Config(
        optimizer=o.optimizer,
        chunk=o.chunk,  # (the history's size: the step count per call is a runtime value)
        pooling=o.pooling,
        layers=problem.layers,
        channels=channels,
        lbfgs_memory=o.lbfgs_memory,
        batched_content=True,
        precision=precision,
        convs=plan,
        remat=bool(o.remat),
        extra_loss=o.extra_loss,
        tileable=bool(o.tileable),
        tile=o.tile,
        linesearch="zoom" if o.linesearch == "auto" else o.linesearch,
        interruptible=_interruptible(lay, o),
        samples=0 if t.sampled is None else o.samples,
        resample_every=o.resample_every,
        param=o.param,
        pyramid_levels=o.pyramid_levels,
        nnst_refresh=1 if t.nnst_final is None else o.nnst_refresh,  # (other runs: one program)
    )
    images0 = initial_images(
        take_rows(problem.contents, members),
        lay.values["seed"][idx].astype(np.int64),
        o,
        keys=None if o.key is None else member_keys(o, lay.values)[idx],
        rows=idx,
    )
    run_vars = vgg.with_backward_kernels(problem.variables)
    batch = Batch(images0, run_vars, targets, hyper, config)
    return batch if lay.mesh is None else _shard(batch, lay.mesh)


def _shard(batch: Batch, mesh: jax.sharding.Mesh) -> Batch:
    row, rep = row_sharding(mesh), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    t = batch.targets
    targets = losses.Targets(
        jax.device_put(t.content, row),
        jax.device_put(t.grams, rep),
        jax.device_put(t.moments, rep),
        jax.device_put(t.masks, rep),
        sampled=None
        if t.sampled is None
        else t.sampled._replace(
            points=jax.device_put(t.sampled.points, rep),
            content=None if t.sampled.content is None else jax.device_put(t.sampled.content, row),
            style=None if t.sampled.style is None else jax.device_put(t.sampled.style, rep),
            style_moments=None
            if t.sampled.style_moments is None
            else jax.device_put(t.sampled.style_moments, rep),
            regions=None  # content masks: shared by every member, like the style's points
            if t.sampled.regions is None
            else jax.device_put(t.sampled.regions, rep),
        ),
        matting=jax.device_put(t.matting, row),  # (one content's statistics per row)
        nnst=jax.device_put(t.nnst, row),
        nnst_final=jax.device_put(t.nnst_final, rep),
        regions=jax.device_put(t.regions, rep),
    )
    hyper = batch.hyper._replace(weights=jax.device_put(batch.hyper.weights, row))
    if hyper.keys is not None:
        hyper = hyper._replace(keys=jax.device_put(hyper.keys, row))
    return batch._replace(
        images0=jax.device_put(batch.images0, row),
        targets=targets,
        hyper=hyper,
        variables=jax.device_put(batch.variables, rep),
    )


def row_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
    """Arrays with a leading row axis, split across the mesh's devices."""
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def initial_images(
    content: jax.Array,
    seeds: np.ndarray,
    options: Options,
    keys: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> jax.Array:
    """(N, H, W, 3) starting images for (N, H, W, 3) contents and (N,) seeds, or (N, 2) raw
    ``jax.random`` keys (which then replace the seeds). An (M, H, W, 3) ``init`` holds one image
    per member of the batch: ``rows`` are the members wanted."""
    if isinstance(options.init, str):
        if options.init == "content":
            return content
        if options.init == "recolour":  # made from the style and labels before the stages
            raise ValueError("init='recolour' is made by jaxnst.stylize (labels.recoloured)")
        if options.param == "laplacian":  # noise on the coarsest level (see _coarse_noise)
            raw = _raw_keys(seeds) if keys is None else np.asarray(keys, np.uint32)
            return _coarse_noise(raw, tuple(content.shape[1:]), options.pyramid_levels)
        if keys is None:
            return _noise_from_seeds(np.asarray(seeds, np.uint32), tuple(content.shape[1:]))
        return _noise(np.asarray(keys, np.uint32), tuple(content.shape[1:]))
    if np.ndim(options.init) == 4:  # one start per member (a coarse-to-fine sweep's stages)
        inits = as_images(options.init, "init")
        n, shape = inits.shape[0], inits.shape[1:]
        if rows is None or n <= int(np.max(rows)) or shape != content.shape[1:]:
            raise ValueError(
                f"init images have shape {tuple(inits.shape)}, expected one per member of the "
                f"batch, each of the content's shape {tuple(content.shape[1:])}"
            )
        return take_rows(inits, np.asarray(rows))
    init = as_image(options.init, "init")
    if init.shape != content.shape[1:]:
        raise ValueError(
            f"init image has shape {tuple(init.shape)}, expected the content's "
            f"{tuple(content.shape[1:])}"
        )
    return jnp.broadcast_to(init, content.shape)


def _levels(o: Options, problem: Problem) -> int:
    """Arrays the descent moves per image: 1, or the pyramid's levels, which share the
    learning rate (each moves ``learning_rate / levels``, so the image moves as far as the
    pixels would)."""
    if o.param != "laplacian":
        return 1
    h, w = problem.contents.shape[1:3]
    return param.levels_for(h, w, o.pyramid_levels) + 1


def _raw_keys(seeds: np.ndarray) -> np.ndarray:
    s = np.asarray(seeds, np.uint32)
    return np.stack([np.zeros_like(s), s], 1)  # jax.random.PRNGKey(seed)'s raw data


@functools.partial(jax.jit, static_argnums=(1, 2))
def _coarse_noise(raw_keys: jax.Array, shape: tuple[int, ...], levels: int) -> jax.Array:
    """``param="laplacian"``'s noise start: uniform noise on the pyramid's coarsest level,
    upsampled through the others. White noise at full size would sit in the finest level, whose
    gradient is the pixels' own, and stay as speckle (issue 21's measurement)."""
    shapes = param.level_shapes(shape[0], shape[1], param.levels_for(shape[0], shape[1], levels))
    x = _noise(raw_keys, (*shapes[-1], shape[2]))
    for s in reversed(shapes[:-1]):
        x = param.upsample(x, s)
    return x


@functools.partial(jax.jit, static_argnums=1)
def _noise(raw_keys: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """(N, *shape) uniform noise in [0, 1), one image per (N, 2) raw key, in one program."""
    return jax.vmap(lambda k: jax.random.uniform(k, shape, jnp.float32))(raw_keys)


@functools.partial(jax.jit, static_argnums=1)
def _noise_from_seeds(seeds: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return _noise(jax.vmap(jax.random.PRNGKey)(seeds), shape)


def take_rows(a: jax.Array, rows: np.ndarray) -> jax.Array:
    """``a[rows]`` for host indices ``rows``; ``a`` itself when they are 0..len(a)-1 in order
    (one image, no sweep: no gather program to compile)."""
    if len(rows) == a.shape[0] and np.array_equal(rows, np.arange(len(rows))):
        return a
    return _take(a, jax.device_put(np.asarray(rows, np.int32)))


@jax.jit
def _take(a: jax.Array, rows: jax.Array) -> jax.Array:
    return a[rows]


def sweep_grid(o: Options) -> tuple[tuple[str, ...], np.ndarray]:
    """The swept options (those given as sequences), in SWEEPABLE order, and the (N, k) grid of
    their values: the cartesian product with the last option varying fastest."""
    names = tuple(n for n in SWEEPABLE if isinstance(getattr(o, n), tuple))
    values = [getattr(o, n) for n in names]
    if o.key is not None and o.key.ndim == 2:  # a batch of keys: swept by index, after seed
        names, values = names + ("key",), values + [range(o.key.shape[0])]
    if not names:
        return (), np.zeros((1, 0))
    grid = np.array(list(itertools.product(*values)), np.float64)
    return names, grid.reshape(-1, len(names))


def _member_values(o: Options, names: tuple[str, ...], grid: np.ndarray) -> dict[str, np.ndarray]:
    n = grid.shape[0]
    out = {}
    for k in SWEEPABLE:
        out[k] = grid[:, names.index(k)] if k in names else np.full(n, getattr(o, k), np.float64)
    # Seeds stay integers (exact in the float grid: they are below 2**32), and so do key indices.
    out["seed"] = out["seed"].astype(np.int64)
    if "key" in names:
        out["key"] = grid[:, names.index("key")].astype(np.int64)
    return out


def _sample_keys(o: Options, lay: Layout, idx: np.ndarray) -> np.ndarray:
    """(n, 2) uint32 raw keys for the sampled terms' draws: each member's ``key``, or its
    seed's ``PRNGKey`` (whose raw data is (0, seed))."""
    if o.key is not None:
        return np.ascontiguousarray(member_keys(o, lay.values)[idx], np.uint32)
    seeds = lay.values["seed"][idx].astype(np.uint32)
    return np.stack([np.zeros_like(seeds), seeds], 1)


def member_keys(o: Options, values: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 2) uint32: each member's raw ``jax.random`` key (``o.key`` must be set)."""
    key = np.asarray(o.key, np.uint32)
    if key.ndim == 1:
        return np.broadcast_to(key, (len(values["seed"]), 2))
    return key[values["key"]]


def process_share(n: int) -> np.ndarray:
    """Indices of the members this process runs: a contiguous block of ceil(n / processes),
    the last block padded by repeating the last member so every process runs the same shapes."""
    procs, me = jax.process_count(), jax.process_index()
    share = -(-n // procs)
    idx = np.minimum(np.arange(share * procs), n - 1)
    return idx[me * share : (me + 1) * share]


def gather_members(arrays: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """All processes' per-member arrays, concatenated in member order (first n)."""
    from jax.experimental import multihost_utils

    out = multihost_utils.process_allgather(arrays, tiled=True)
    return {k: np.asarray(v)[:n] for k, v in out.items()}


def _sharding(n: int) -> tuple[jax.sharding.Mesh | None, int]:
    """A 1-D mesh over the local devices for a batch of n (None on one device)."""
    d = min(jax.local_device_count(), n)
    if d <= 1:
        return None, 1
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:d]), ("batch",))
    return mesh, d

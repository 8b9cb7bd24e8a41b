"""The jaxnst objective written in PyTorch, for side-by-side benchmarks (scripts/bench.py).

Same weights (jaxnst's converted VGG19, RGB input in [0, 1]), same layers, same targets and the same
normalisation as :func:`jaxnst.loss.losses.objective`: content ``0.5 * mean((F - P)^2)`` averaged
over content layers, style ``sum((G - A)^2) / (4 C^2)`` with Grams averaged over positions and the
mean over style layers, TV the mean squared neighbour difference. PyTorch is an optional dependency
(``pip install torch==2.13.0`` on the project's machines); nothing in the package imports this.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from jaxnst.model import vgg


def _nchw(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, np.float32)).permute(2, 0, 1)[None].contiguous()


class TorchObjective:
    """``loss(image)`` for an NCHW float32 image; ``targets`` is a
    :class:`jaxnst.loss.losses.Targets` (content activations and Grams), ``weights`` (content,
    style, tv) floats."""

    def __init__(
        self,
        variables: dict,
        targets,
        weights,
        pooling: str = "max",
        device: str = "cpu",
        autocast: bool = False,
    ):
        if targets.masks or targets.moments:
            raise ValueError("the PyTorch reference covers the Gram objective only")
        p = variables["params"]
        layers = set(targets.content) | set(targets.grams)
        self.last = max(vgg.LAYERS.index(n) for n in layers)
        self.convs = [
            (
                torch.from_numpy(
                    np.ascontiguousarray(
                        np.asarray(p[n]["kernel"], np.float32).transpose(3, 2, 0, 1)
                    )
                ).to(device),
                torch.from_numpy(np.array(p[n]["bias"], np.float32)).to(device),
            )
            for n in vgg.LAYERS[: self.last + 1]
        ]
        self.mean = torch.tensor(vgg.MEAN_RGB, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.content = {n: _nchw(a).to(device) for n, a in targets.content.items()}
        self.grams = {
            n: torch.from_numpy(np.array(a, np.float32)).to(device)
            for n, a in targets.grams.items()
        }
        self.weights = [float(w) for w in weights]
        self.pooling = pooling
        self.device = device
        self.autocast = autocast  # the VGG under torch.autocast(bfloat16); losses in float32

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image * 255.0 - self.mean
        out = {}
        for k, (kernel, bias) in enumerate(self.convs):
            name = vgg.LAYERS[k]
            if name.endswith("_1") and k > 0:
                b = int(name[4]) - 2
                x = (
                    F.max_pool2d(x, 2)
                    if self.pooling == "max"
                    else F.avg_pool2d(x, 2) * vgg.AVG_POOL_SCALE[b]
                )
            x = torch.relu(F.conv2d(x, kernel, bias, padding=1))
            out[name] = x
        return out

    def loss(self, image: torch.Tensor) -> torch.Tensor:
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=self.autocast):
            f = self.features(image)
        f = {n: a.float() for n, a in f.items()}
        zero = image.new_zeros(())
        lc = sum((0.5 * ((f[n] - p) ** 2).mean() for n, p in self.content.items()), zero)
        lc = lc / max(len(self.content), 1)
        ls = zero
        for n, a in self.grams.items():
            x = f[n][0].flatten(1)  # (C, M)
            g = x @ x.T / x.shape[1]
            ls = ls + ((g - a) ** 2).sum() / (4.0 * a.shape[0] ** 2)
        ls = ls / max(len(self.grams), 1)
        dy = image[:, :, 1:] - image[:, :, :-1]
        dx = image[:, :, :, 1:] - image[:, :, :, :-1]
        lt = (dy * dy).mean() + (dx * dx).mean()
        wc, ws, wt = self.weights
        return wc * lc + ws * ls + wt * lt

    def image(self, hwc) -> torch.Tensor:
        return _nchw(hwc).to(self.device).requires_grad_(True)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def adam_steps(self, image: torch.Tensor, opt: torch.optim.Optimizer, steps: int) -> float:
        """``steps`` Adam steps (one loss+gradient evaluation each); returns the last loss."""
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = self.loss(image)
            loss.backward()
            opt.step()
        self.sync()
        return loss.item()

    def lbfgs(self, hwc, iterations: int, memory: int = 10) -> tuple[np.ndarray, float, int]:
        """A full L-BFGS run (strong Wolfe line search, as jaxnst's default) from ``hwc``. Returns
        the final image (H, W, 3), the final loss and the number of evaluations."""
        image = self.image(hwc)
        opt = torch.optim.LBFGS(
            [image],
            lr=1,
            max_iter=iterations,
            max_eval=iterations * 25,
            history_size=memory,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
        evals = 0

        def closure():
            nonlocal evals
            evals += 1
            opt.zero_grad(set_to_none=True)
            loss = self.loss(image)
            loss.backward()
            return loss

        opt.step(closure)
        self.sync()
        with torch.no_grad():
            final = float(self.loss(image))
        return image.detach()[0].permute(1, 2, 0).cpu().numpy(), final, evals


# --------------------------------------------------------------------------- feed-forward


class TorchTransformNet(torch.nn.Module):
    """jaxnst's feed-forward network (:class:`jaxnst.feedforward.network.TransformNet`, one style,
    one strength) in PyTorch: pytorch/examples' fast_neural_style TransformerNet with jaxnst's
    changes (no bias before instance norm, no shift in the residual blocks' second norms,
    ``(tanh + 1) / 2`` output). NCHW in [0, 1]. :meth:`load_jax` copies jaxnst's parameters."""

    def __init__(self, width: float = 1.0, blocks: int = 5):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        nn = torch.nn
        self.names: list[tuple[str, int, int, bool]] = []  # conv name, kernel, stride, upsample
        self.convs = nn.ModuleDict()
        self.norms = nn.ModuleDict()

        def add(name, cin, cout, k, stride=1, up=False, norm=None, shift=True):
            self.convs[name] = nn.Conv2d(cin, cout, k, stride, bias=norm is None)
            if norm:
                self.norms[norm] = nn.InstanceNorm2d(cout, affine=True)
                if not shift:
                    self.norms[norm].bias = None
            self.names.append((name, k, stride, up))

        add("c1", 3, c1, 9, norm="n1")
        add("d1", c1, c2, 3, 2, norm="n2")
        add("d2", c2, c3, 3, 2, norm="n3")
        for i in range(blocks):
            add(f"r{i}a", c3, c3, 3, norm=f"rn{i}a")
            add(f"r{i}b", c3, c3, 3, norm=f"rn{i}b", shift=False)
        add("u0", c3, c2, 3, up=True, norm="un0")
        add("u1", c2, c1, 3, up=True, norm="un1")
        add("out", c1, 3, 9)
        self.blocks = blocks

    def _conv(self, name: str, h: torch.Tensor) -> torch.Tensor:
        _, k, stride, up = next(n for n in self.names if n[0] == name)
        if up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.convs[name](F.pad(h, (k // 2,) * 4, mode="reflect"))

    def _norm(self, name: str, h: torch.Tensor) -> torch.Tensor:
        n = self.norms[name]
        y = F.instance_norm(h, eps=n.eps) * n.weight.view(1, -1, 1, 1)
        return y if n.bias is None else y + n.bias.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 2 - 1
        for conv, norm in (("c1", "n1"), ("d1", "n2"), ("d2", "n3")):
            h = torch.relu(self._norm(norm, self._conv(conv, h)))
        for i in range(self.blocks):
            r = torch.relu(self._norm(f"rn{i}a", self._conv(f"r{i}a", h)))
            h = h + self._norm(f"rn{i}b", self._conv(f"r{i}b", r))
        for i in range(2):
            h = torch.relu(self._norm(f"un{i}", self._conv(f"u{i}", h)))
        return (torch.tanh(self._conv("out", h)) + 1) / 2

    def load_jax(self, params: dict) -> TorchTransformNet:
        with torch.no_grad():
            for name, conv in self.convs.items():
                k = np.asarray(params[name]["kernel"], np.float32).transpose(3, 2, 0, 1)
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(k)))
                if conv.bias is not None:
                    conv.bias.copy_(torch.from_numpy(np.array(params[name]["bias"], np.float32)))
            for name, n in self.norms.items():
                n.weight.copy_(torch.from_numpy(np.array(params[name]["gamma"], np.float32)[0, 0]))
                if n.bias is not None:
                    n.bias.copy_(torch.from_numpy(np.array(params[name]["beta"], np.float32)[0, 0]))
        return self


def feedforward_loss(obj: TorchObjective, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch's mean objective (as jaxnst's training step at strength 1): each output ``y``
    (B, 3, H, W) against its photo ``x``'s content activations and ``obj``'s style Grams."""
    with torch.no_grad():
        fx = obj.features(x)
    fy = obj.features(y)
    b = y.shape[0]
    lc = sum(0.5 * ((fy[n] - fx[n]) ** 2).flatten(1).mean(1) for n in obj.content)
    lc = lc / max(len(obj.content), 1)
    ls = y.new_zeros(b)
    for n, a in obj.grams.items():
        f = fy[n].flatten(2)  # (B, C, M)
        g = f @ f.transpose(1, 2) / f.shape[2]
        ls = ls + ((g - a) ** 2).sum((1, 2)) / (4.0 * a.shape[0] ** 2)
    ls = ls / max(len(obj.grams), 1)
    dy = y[:, :, 1:] - y[:, :, :-1]
    dx = y[:, :, :, 1:] - y[:, :, :, :-1]
    lt = (dy * dy).flatten(1).mean(1) + (dx * dx).flatten(1).mean(1)
    wc, ws, wt = obj.weights
    return (wc * lc + ws * ls + wt * lt).mean()


def train_steps(net, obj: TorchObjective, opt, batches) -> list[float]:
    """pytorch/examples' training loop: one Adam step per batch (NHWC float32 NumPy arrays)."""
    out = []
    for hwc in batches:
        x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))).to(obj.device)
        opt.zero_grad(set_to_none=True)
        loss = feedforward_loss(obj, x, net(x))
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out

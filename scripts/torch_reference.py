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

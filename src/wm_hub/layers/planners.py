"""Planners over action sequences for model predictive control (MPC), usable with any world model.

A planner minimises `cost_fn(actions)`, where `actions` is a batch of candidate sequences
`(N, horizon, action_dim)` and the cost is `(N,)` (e.g. the distance between the latent a world model
predicts after the sequence and a goal's latent). Both keep actions in `[action_low, action_high]`.

- `CEMPlanner`: the cross-entropy method. A per-step Gaussian; each iteration samples `num_samples`
  sequences (all costed as one batch), keeps the `topk` cheapest and refits mean and std to them. Its
  noise is white (DINO-WM) or, with `noise_beta > 0`, coloured along time as in iCEM (Pinneri et al. 2020).
- `GradientPlanner`: gradient descent on the sequence through a differentiable `cost_fn`, with a
  little Gaussian noise on the actions after each step (DINO-WM: lr 1, noise 0.003).

`mpc(...)` runs the receding-horizon loop: plan, execute the first `execute` actions, re-plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

CostFn = Callable[[Tensor], Tensor]


@dataclass
class _SequencePlanner:
    """What both planners share: the plan's length, the iteration count and the action box."""

    horizon: int = 5
    iterations: int = 30
    init_std: float = 1.0
    action_low: float = -1.0
    action_high: float = 1.0

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.iterations < 1:
            raise ValueError(f"expected horizon, iterations >= 1, got {self.horizon}, {self.iterations}")

    def _start(self, init: Tensor | None, action_dim: int, generator: torch.Generator | None, scale: float
               ) -> Tensor:
        """`init` checked and copied, or `scale` times Gaussian noise (zeros at scale 0): `(horizon, action_dim)`."""
        if init is None:
            if scale == 0:
                return torch.zeros(self.horizon, action_dim)
            return torch.randn(self.horizon, action_dim, generator=generator) * scale
        if init.shape != (self.horizon, action_dim):
            raise ValueError(f"expected init of shape {(self.horizon, action_dim)}, got {tuple(init.shape)}")
        return init.detach().clone().float()


@dataclass
class CEMPlanner(_SequencePlanner):
    """Cross-entropy method; defaults from DINO-WM (horizon 5, 300 samples, top 30, 30 iterations, white noise).

    `noise_beta > 0` draws each candidate's noise coloured along time (power spectrum ~ 1/f^beta; iCEM uses
    2-3.5), so candidates move consistently for many steps instead of dithering around their mean. The time
    axis is the `horizon * substeps` env steps of a plan, where one plan step holds `substeps` env actions of
    `action_dim // substeps` each (a world model's frame skip)."""

    num_samples: int = 300
    topk: int = 30
    noise_beta: float = 0.0
    substeps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.topk <= self.num_samples:
            raise ValueError(f"expected 0 < topk <= num_samples, got topk={self.topk}, num_samples={self.num_samples}")
        if self.noise_beta < 0 or self.substeps < 1:
            raise ValueError(f"expected noise_beta >= 0 and substeps >= 1, got {self.noise_beta}, {self.substeps}")

    def _noise(self, action_dim: int, generator: torch.Generator | None) -> Tensor:
        """Unit-variance noise `(num_samples, horizon, action_dim)`, white or coloured along time."""
        if self.noise_beta == 0:
            return torch.randn(self.num_samples, self.horizon, action_dim, generator=generator)
        if action_dim % self.substeps:
            raise ValueError(f"action_dim {action_dim} is not a multiple of substeps {self.substeps}")
        noise = colored_noise(self.num_samples, self.horizon * self.substeps, action_dim // self.substeps,
                              self.noise_beta, generator)
        return noise.reshape(self.num_samples, self.horizon, action_dim)

    @torch.no_grad()
    def plan(self, cost_fn: CostFn, action_dim: int, generator: torch.Generator | None = None,
             init: Tensor | None = None) -> Tensor:
        """The mean of the final Gaussian, `(horizon, action_dim)`. `init` (e.g. the last plan shifted
        by the executed steps) is the starting mean; zeros otherwise."""
        mean = self._start(init, action_dim, generator, scale=0.0)
        std = torch.full_like(mean, self.init_std)
        for _ in range(self.iterations):
            samples = (mean + std * self._noise(action_dim, generator)).clamp(self.action_low, self.action_high)
            samples[0] = mean  # the current mean is always a candidate
            costs = cost_fn(samples)
            _check_costs(costs, self.num_samples)
            elite = samples[costs.topk(self.topk, largest=False).indices]  # (topk, horizon, action_dim)
            mean, std = elite.mean(0), elite.std(0, correction=0)
        return mean


def colored_noise(n: int, steps: int, dim: int, beta: float, generator: torch.Generator | None = None) -> Tensor:
    """`n` Gaussian sequences `(n, steps, dim)` with unit variance per element whose power spectrum along
    `steps` falls as 1/f^beta (0: white, 2: Brownian-like). Drawn in the frequency domain; the zero frequency
    is weighted like the lowest one, 1/steps, so a sequence keeps a direction over its whole length."""
    freqs = torch.fft.rfftfreq(steps)
    freqs[0] = 1.0 / steps
    scale = freqs.pow(-beta / 2)  # amplitude per frequency, (steps // 2 + 1,)
    # irfft keeps only the real part at frequency 0 (and at steps / 2 when steps is even): those get sqrt(2)
    # more amplitude, so that beta = 0 is exactly white; `weights` count each frequency's share of the variance
    edges = [0, -1] if steps % 2 == 0 else [0]
    scale[edges] *= 2**0.5
    weights = torch.full_like(scale, 4.0)
    weights[edges] = 1.0
    std = (weights * scale.pow(2)).sum().sqrt() / steps
    shape = (n, dim, len(freqs))
    spectrum = torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)) * scale
    return (torch.fft.irfft(spectrum, n=steps) / std).transpose(1, 2)


@dataclass
class GradientPlanner(_SequencePlanner):
    """Gradient descent on the action sequence (SGD at `lr`), with noise `action_noise` after each step;
    it starts from `init` or from Gaussian actions of std `init_std`."""

    iterations: int = 100
    init_std: float = 0.1
    lr: float = 1.0
    action_noise: float = 0.003

    def plan(self, cost_fn: CostFn, action_dim: int, generator: torch.Generator | None = None,
             init: Tensor | None = None) -> Tensor:
        """The optimised sequence `(horizon, action_dim)`."""
        start = self._start(init, action_dim, generator, scale=self.init_std)
        actions = start.clamp(self.action_low, self.action_high).requires_grad_(True)
        optimizer = torch.optim.SGD([actions], lr=self.lr)
        for _ in range(self.iterations):
            optimizer.zero_grad()
            costs = cost_fn(actions[None])
            _check_costs(costs, 1)
            costs.sum().backward()
            optimizer.step()
            with torch.no_grad():
                actions += self.action_noise * torch.randn(actions.shape, generator=generator)
                actions.clamp_(self.action_low, self.action_high)
        return actions.detach()


PLANNERS = {"cem": CEMPlanner, "gd": GradientPlanner}  # by name, as DINO-WM's config and make_planner take them


def _check_costs(costs: Tensor, n: int) -> None:
    if costs.shape != (n,):
        raise ValueError(f"cost_fn should return one cost per candidate, shape ({n},); got {tuple(costs.shape)}")


def mpc(
    planner: CEMPlanner | GradientPlanner,
    make_cost: Callable[[], CostFn],
    execute_fn: Callable[[Tensor], bool],
    action_dim: int,
    max_plans: int,
    execute: int = 1,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Receding-horizon control: `make_cost()` builds the cost from the current observation, the plan's
    first `execute` actions go to `execute_fn(actions (execute, action_dim)) -> done`, and the rest of the
    plan (padded with zeros) warm-starts the next one. Stops when done or after `max_plans` plans;
    returns the executed action chunks."""
    if not 1 <= execute <= planner.horizon:
        raise ValueError(f"expected 1 <= execute <= horizon ({planner.horizon}), got {execute}")
    executed, init = [], None
    for _ in range(max_plans):
        plan = planner.plan(make_cost(), action_dim, generator=generator, init=init)
        executed.append(plan[:execute])
        if execute_fn(plan[:execute]):
            break
        init = torch.cat([plan[execute:], torch.zeros(execute, action_dim)])
    return executed

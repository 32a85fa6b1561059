"""One DreamerV3 gradient update: the world model on a replayed batch, then the actor and critic on its
imagined continuations, each part with its own learning rate and gradient clipping."""

from __future__ import annotations

import torch
from accelerate import PartialState

from wm_hub.models.dreamer.environment_dreamer import obs_to_tensor
from wm_hub.models.dreamer.modeling_dreamer import DreamerAgent


class DreamerLearner:
    """The agent's optimiser: one Adam with a parameter group per part (world model, actor, critic); defaults are
    the paper's (world model lr 1e-4, eps 1e-8, clip 1000; actor and critic lr 3e-5, eps 1e-5, clip 100).
    `critic_lr` (default: `ac_lr`) sets the critic's apart."""

    def __init__(self, agent: DreamerAgent, model_lr: float = 1e-4, model_eps: float = 1e-8,
                 model_clip: float = 1000.0, ac_lr: float = 3e-5, ac_eps: float = 1e-5, ac_clip: float = 100.0,
                 critic_lr: float | None = None) -> None:
        self.agent = agent
        self.groups = [list(agent.world_model.parameters()), list(agent.actor.parameters()),
                       list(agent.critic.parameters())]
        self.clips = [model_clip, ac_clip, ac_clip]
        self.optimizer = torch.optim.Adam([
            {"params": self.groups[0], "lr": model_lr, "eps": model_eps},
            {"params": self.groups[1], "lr": ac_lr, "eps": ac_eps},
            {"params": self.groups[2], "lr": critic_lr or ac_lr, "eps": ac_eps},
        ])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)  # constant, as in the paper

    def update(self, batch: dict[str, torch.Tensor], state: PartialState | None = None) -> dict[str, float]:
        """One update from a replayed batch (`ReplayBuffer.sample`); with several processes (`state`), the
        gradients are averaged across them. Returns the logged scalars."""
        agent = self.agent
        device = agent.return_range.device
        batch = {k: v.to(device) for k, v in batch.items()}
        obs = obs_to_tensor(batch["obs"], agent.config)
        out = agent.world_model(obs, batch["prev_action"], batch["reward"], batch["is_first"], batch["is_terminal"])
        ac = agent.actor_critic_loss(out.posterior, batch["is_terminal"])
        self.optimizer.zero_grad(set_to_none=False)
        (out.loss + ac.loss).backward()
        if state is not None and state.num_processes > 1:
            from accelerate.utils import reduce

            for group in self.groups:
                for p in group:
                    p.grad.copy_(reduce(p.grad, reduction="mean"))
        norms = [torch.nn.utils.clip_grad_norm_(g, c) for g, c in zip(self.groups, self.clips, strict=True)]
        self.optimizer.step()
        agent.update_slow_critic()
        return {"model_loss": out.loss.item(), **{k: float(v) for k, v in {**out.logs, **ac.logs}.items()},
                "model_grad_norm": float(norms[0]), "actor_grad_norm": float(norms[1])}

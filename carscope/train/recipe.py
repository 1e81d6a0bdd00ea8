"""The recipe: the optimizer and its parameter groups, the LR schedule, the head-only phase, the EMA, and a
GradScaler's state across a change of precision.

    python -c "from carscope.train.models import create_model; from carscope.train.options import default_args; \
from carscope.train.recipe import build_optimizer; \
print(build_optimizer(create_model('tinynet', 3), 'tinynet', default_args(task='view', data='d', out='r'), 1.0))"

AdamW (or SGD) in four parameter groups (head/backbone x decay/no-decay), linear warmup then cosine per step;
with pretrained weights the head trains alone for --freeze-epochs (`set_frozen`, `backbone_eval`), then everything
with the backbone at --backbone-lr-scale. The loop that uses them is `carscope/train/engine.py`.
"""

from __future__ import annotations

import math

from carscope.train.data import say


def build_optimizer(model, arch: str, args, backbone_lr_scale: float):
    """AdamW/SGD with four groups: head/backbone x decay/no-decay (no weight decay on norms and biases)."""
    import torch

    from carscope.train.models import head_parameters

    head_ids = {id(p) for p in head_parameters(model, arch)}
    groups: dict[tuple[bool, bool], list] = {(h, d): [] for h in (True, False) for d in (True, False)}
    for p in model.parameters():
        groups[(id(p) in head_ids, p.ndim > 1)].append(p)
    param_groups = []
    for (is_head, decay), params in groups.items():
        if params:
            param_groups.append({"params": params, "lr": args.lr * (1.0 if is_head else backbone_lr_scale),
                                 "weight_decay": args.weight_decay if decay else 0.0, "is_head": is_head})
    if args.opt == "sgd":
        return torch.optim.SGD(param_groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    return torch.optim.AdamW(param_groups, lr=args.lr)


def build_scheduler(optimizer, total_steps: int, warmup_steps: int, min_ratio: float = 0.01):
    """Linear warmup then cosine to min_ratio of each group's LR, stepped per optimizer step."""
    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_frozen(model, arch: str, frozen: bool) -> None:
    """Head-only phase: backbone without gradients and its BatchNorm statistics fixed."""
    from carscope.train.models import head_parameters

    head_ids = {id(p) for p in head_parameters(model, arch)}
    for p in model.parameters():
        if id(p) not in head_ids:
            p.requires_grad_(not frozen)


def backbone_eval(model, arch: str) -> None:
    """Head-only phase, in train mode: the backbone's BatchNorm layers keep their running statistics (eval mode)."""
    from torch import nn

    from carscope.train.models import head_parameters

    head_ids = {id(p) for p in head_parameters(model, arch)}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(id(p) in head_ids for p in m.parameters()):
            m.eval()


class EMA:
    """An exponential moving average of a model's weights and buffers, updated without a host synchronisation.

    torch's AveragedModel tests its step counter, a tensor, on every update (`n_averaged == 0`) and copies it to
    the device: a CPU-GPU synchronisation per training step. Here the counter lives on the host. The state dict
    has AveragedModel's layout (`n_averaged`, `module.*`), so checkpoints written before load unchanged."""

    def __init__(self, model, decay: float):
        import copy

        import torch

        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.n = 0
        self._torch = torch

    def _pairs(self, model):
        torch = self._torch
        mine = list(self.module.parameters()) + list(self.module.buffers())
        theirs = list(model.parameters()) + list(model.buffers())
        floats = [(a, b.detach()) for a, b in zip(mine, theirs, strict=True) if torch.is_floating_point(a)]
        others = [(a, b.detach()) for a, b in zip(mine, theirs, strict=True) if not torch.is_floating_point(a)]
        return floats, others

    def update(self, model) -> None:
        torch = self._torch
        floats, others = self._pairs(model)
        with torch.no_grad():
            if self.n == 0:
                for a, b in floats + others:
                    a.copy_(b)
            else:
                torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - self.decay)
                for a, b in others:
                    a.copy_(b)
        self.n += 1

    def state_dict(self) -> dict:
        out = {"n_averaged": self._torch.tensor(self.n, dtype=self._torch.long)}
        out.update({f"module.{k}": v for k, v in self.module.state_dict().items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        self.n = int(state["n_averaged"])
        self.module.load_state_dict({k[len("module."):]: v for k, v in state.items() if k.startswith("module.")})


def load_scaler_state(scaler, state: dict | None) -> None:
    """A GradScaler's saved state, across a change of precision: a run saved without a scaler (CPU, bf16) has an
    empty state, which `GradScaler.load_state_dict` refuses once the scaler is enabled (the run resumed on a
    GPU with fp16); that scaler starts fresh instead. A saved state for a scaler now disabled is dropped."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)
    elif scaler.is_enabled():
        say("resuming with fp16 and a GradScaler where the checkpoint had none: the loss scale starts afresh")

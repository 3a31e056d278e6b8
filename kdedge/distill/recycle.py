"""Dead ReLU channels brought back to life during training (ReDo: Sokar et al., ICML 2023).

A 16-wide student has few channels to lose, and it loses some: the 88k-step 16x5 default ends with 11 of
its 96 ReLU channels never positive on 24 training images (5 of the head's 16), its seed-1 run with 3.
A dead channel costs its MACs and computes nothing. Every `recycle_interval` steps the trainer looks for
channels whose ReLU output is never positive on a few fresh batches and re-initialises them as ReDo
does: their incoming weights and bias drawn again from the layer's initial distribution, their outgoing
weights zeroed, their AdamW moments reset. The zeroed outgoing weights make the surgery exact: the
network computes the same function right after it (`tests/test_recycle.py`), and the channel then
learns from the gradient it now gets.

Students whose `body` alternates conv and ReLU, then a `tail` conv (anchor, repanchor, espcn), whose blocks are plain convs or
`EdgeBlock`s of the fast branch set (conv3x3, conv1x1, identity). An `EdgeBlock`'s identity branch
feeds channel c of its input straight to channel c of its output, so zeroing the outgoing weights of
a width-to-width block also sets its own 3x3 centre tap c -> c to -1, which the identity's +1 cancels.
Written here rather than taken from a library: ReDo's reference code is for JAX agents, and the
identity branch needs exactly this care.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional

import torch

from kdedge.errors import KdedgeError

SUPPORTED_BRANCHES = ("conv3x3", "conv1x1", "identity")


def _blocks(module) -> List[torch.nn.Module]:
    """The conv blocks of an anchor-family student, in order: each body block, then the tail."""
    body = getattr(module, "body", None)
    if body is None or not hasattr(module, "tail") or not all(type(m) is torch.nn.ReLU for m in list(body)[1::2]):
        raise KdedgeError("--recycle-interval needs a student whose body alternates conv and ReLU: anchor, repanchor, "
                          "espcn (got %s)" % type(module).__name__, fix="use one of those students, or --recycle-interval 0")
    blocks = [m for i, m in enumerate(body) if i % 2 == 0] + [module.tail]
    for b in blocks:
        if not isinstance(b, torch.nn.Conv2d) and set(getattr(b, "branches", ("?",))) - set(SUPPORTED_BRANCHES):
            raise KdedgeError("--recycle-interval supports the branches %s (got %s)" % (", ".join(SUPPORTED_BRANCHES), ", ".join(b.branches)),
                              fix="train with --branches fast, or --recycle-interval 0")
    return blocks


@torch.no_grad()
def dead_channels(module, batches) -> Dict[int, List[int]]:
    """{activation index: channels whose ReLU output is never positive on any of `batches`}, only the
    activations that have some. The forward is the module's own body, run in float without autocast."""
    _blocks(module)
    was_training = module.training
    module.eval()
    peak: Optional[List[torch.Tensor]] = None
    for x in batches:
        h, acts = x.float(), []
        for i, m in enumerate(module.body):
            h = m(h)
            if i % 2:
                acts.append(h.amax(dim=(0, 2, 3)))
        peak = acts if peak is None else [torch.maximum(a, b) for a, b in zip(peak, acts)]
    module.train(was_training)
    return {k: torch.nonzero(p <= 0).flatten().tolist() for k, p in enumerate(peak or []) if bool((p <= 0).any())}


def _incoming(block) -> List[torch.Tensor]:
    """Parameters whose first axis is the block's output channel."""
    if isinstance(block, torch.nn.Conv2d):
        return [block.weight, block.bias]
    return [block.conv3x3.weight, block.conv3x3.bias] + ([block.conv1x1.weight] if "conv1x1" in block.branches else [])


def _outgoing(block) -> List[torch.Tensor]:
    """Weights whose second axis is the block's input channel."""
    if isinstance(block, torch.nn.Conv2d):
        return [block.weight]
    return [block.conv3x3.weight] + ([block.conv1x1.weight] if "conv1x1" in block.branches else [])


def _fresh(block, generator: torch.Generator):
    """A copy of `block` with every conv drawn again from PyTorch's default init, from `generator`."""
    fresh = copy.deepcopy(block)
    state = torch.random.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator)))
    try:  # reset_parameters draws from the global generator; restore it so training's own draws stay as they were
        for m in fresh.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    return fresh


@torch.no_grad()
def recycle(module, dead: Dict[int, List[int]], generator: torch.Generator, optimizer=None, ema_module=None) -> int:
    """Re-initialise the `dead` channels of `module` in place (and the same slices of `ema_module`, the
    EMA copy the checkpoints deploy); returns how many were recycled."""
    blocks = _blocks(module)
    touched = []  # (parameter, index): every slice written
    for k, channels in sorted(dead.items()):
        if not channels:
            continue
        idx = torch.tensor(channels)
        src, nxt = blocks[k], blocks[k + 1]
        fresh = _fresh(src, generator)
        for p, q in zip(_incoming(src), _incoming(fresh)):
            p[idx] = q[idx].to(p)
            touched.append((p, (idx,)))
        for w in _outgoing(nxt):
            w[:, idx] = 0
            touched.append((w, (slice(None), idx)))
        if "identity" in getattr(nxt, "branches", ()):  # cancel the identity's +1 from c to c
            nxt.conv3x3.weight[idx, idx, 1, 1] = -1.0
            touched.append((nxt.conv3x3.weight, (idx, idx, 1, 1)))
    if ema_module is not None:  # the same slices in the EMA copy (same parameter names: a deep copy)
        name = {id(p): n for n, p in module.named_parameters()}
        ema = dict(ema_module.named_parameters())
        for p, where in touched:
            ema[name[id(p)]][where] = p[where]
    if optimizer is not None:  # ReDo: the moments of recycled weights start again from zero
        for p, where in touched:
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.shape == p.shape:
                    v[where] = 0
    return sum(len(c) for c in dead.values())

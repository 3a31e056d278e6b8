"""Student networks small enough for an INT8 edge device, and their cost per LR pixel.

Three families, each registered by name with `scale` (2/3/4), `color` ("y" default, or "rgb"),
`width` and `depth` knobs (`kdedge.models.create_model("anchor", width=32)`):

- `espcn`: the ESPCN/FSRCNN-class baseline (Shi et al. 2016): a 5x5 conv, 3x3 convs, a sub-pixel
  conv and a pixel shuffle. The reference point every small SR paper beats.
- `anchor`: a plain stack of 3x3 convs + ReLU whose output is added to the input repeated scale^2
  times before the pixel shuffle, then clipped to [0, 1] (the idea behind ABPN, Du et al. 2021, and
  QuickSRNet, Berger et al. 2023). Nothing but conv/ReLU/add/shuffle/clip: every op has a plain
  INT8 kernel, the residual to learn is small, so activation ranges stay tight under quantization.
- `repanchor`: the same network at inference, trained with multi-branch "edge-oriented" blocks
  (ECBSR, Zhang et al. 2021: 3x3, 1x1 then 3x3, 1x1 then fixed Sobel/Laplacian filters, identity).
  `reparameterize()` folds every block into one 3x3 conv (outputs equal to ~1e-6), after which the
  module is exactly an `anchor` network: extra training-time capacity at zero inference cost.

`complexity(module)` counts parameters and multiply-accumulates per LR pixel (the deploy-time
figure: a re-parameterisable module is measured on a fused copy).
"""
from __future__ import annotations

import copy
from typing import Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdedge.models import register_model, registered_by

COLORS = ("y", "rgb")
SCALES = (2, 3, 4)


def _check(scale: int, color: str) -> int:
    from kdedge.errors import KdedgeError

    if scale not in SCALES:
        raise KdedgeError("student scale %r is not supported" % (scale,), fix="use one of %s" % (SCALES,))
    if color not in COLORS:
        raise KdedgeError("student color %r is not supported" % (color,), fix="use 'y' or 'rgb'")
    return 1 if color == "y" else 3


def _anchor(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Each LR channel repeated scale^2 times in pixel-shuffle order (= nearest upsampling after it).

    Written as slices + one concat rather than `repeat_interleave`, so the ONNX graph is a single
    static Concat that every INT8 backend handles.
    """
    r = scale * scale
    if x.shape[1] == 1:
        return torch.cat([x] * r, dim=1)
    return torch.cat([x[:, c:c + 1] for c in range(x.shape[1]) for _ in range(r)], dim=1)


# --------------------------------------------------------------------------- blocks

class EdgeBlock(nn.Module):
    """ECBSR's edge-oriented conv block: parallel branches at training time, one 3x3 conv after fusing.

    Branches (choose with `branches`): "conv3x3"; "conv1x1" (RepVGG's, fused as the centre tap);
    "expand" (1x1 to `expand` x out channels, then 3x3); "sobelx", "sobely", "laplacian" (1x1, then a
    fixed depthwise edge filter with a learned per-channel scale); "identity" (only when in == out).
    Every branch is linear, so their sum is one 3x3 conv.

    Unlike ECBSR's code, the 1x1 convs feeding a 3x3 have no bias and the 3x3 pads with zeros: ECBSR
    pads the 1x1 output with its bias so the fused conv matches at the borders, but that bias only
    adds a constant the 3x3's own bias already provides. Same function class, exact fusion at the
    borders, and no per-step border writes (those made training ~2x slower on this CPU).
    """

    ALL_BRANCHES = ("conv3x3", "conv1x1", "expand", "sobelx", "sobely", "laplacian", "identity")
    ECB_BRANCHES = ("conv3x3", "expand", "sobelx", "sobely", "laplacian", "identity")  # ECBSR's set
    FAST_BRANCHES = ("conv3x3", "conv1x1", "identity")  # RepVGG's set: ~1.3x a plain step on a CPU

    def __init__(self, cin: int, cout: int, branches: Sequence[str] = ECB_BRANCHES, expand: int = 2):
        super().__init__()
        unknown = set(branches) - set(self.ALL_BRANCHES)
        if unknown:
            raise ValueError("unknown EdgeBlock branches %s (choose from %s)" % (sorted(unknown), self.ALL_BRANCHES))
        self.cin, self.cout = cin, cout
        self.branches = tuple(b for b in branches if b != "identity" or cin == cout)
        self.conv3x3 = nn.Conv2d(cin, cout, 3, padding=1)
        if "conv1x1" in self.branches:
            self.conv1x1 = nn.Conv2d(cin, cout, 1, bias=False)
        if "expand" in self.branches:
            mid = expand * cout
            self.expand_1x1 = nn.Conv2d(cin, mid, 1, bias=False)
            self.expand_3x3 = nn.Conv2d(mid, cout, 3, padding=1, bias=False)
        for name in ("sobelx", "sobely", "laplacian"):
            if name in self.branches:
                setattr(self, name + "_1x1", nn.Conv2d(cin, cout, 1, bias=False))
                self.register_parameter(name + "_scale", nn.Parameter(torch.randn(cout, 1, 1, 1) * 1e-3))
                self.register_buffer(name + "_mask", self._edge_mask(name, cout), persistent=False)

    @staticmethod
    def _edge_mask(name: str, channels: int) -> torch.Tensor:
        k = {
            "sobelx": [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
            "sobely": [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
            "laplacian": [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
        }[name]
        return torch.tensor(k).expand(channels, 1, 3, 3).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3x3(x)
        if "conv1x1" in self.branches:
            out = out + self.conv1x1(x)
        if "expand" in self.branches:
            out = out + self.expand_3x3(self.expand_1x1(x))
        for name in ("sobelx", "sobely", "laplacian"):
            if name in self.branches:
                w = getattr(self, name + "_scale") * getattr(self, name + "_mask")
                out = out + F.conv2d(getattr(self, name + "_1x1")(x), w, padding=1, groups=self.cout)
        if "identity" in self.branches:
            out = out + x
        return out

    @torch.no_grad()
    def fused(self) -> nn.Conv2d:
        """The single 3x3 conv equal to the sum of the branches."""
        w = self.conv3x3.weight.detach().clone()
        b = self.conv3x3.bias.detach().clone()
        if "conv1x1" in self.branches:
            w[:, :, 1, 1] += self.conv1x1.weight[:, :, 0, 0]
        if "expand" in self.branches:
            w0 = self.expand_1x1.weight[:, :, 0, 0]  # mid x cin
            w += torch.einsum("omhw,mi->oihw", self.expand_3x3.weight, w0)
        for name in ("sobelx", "sobely", "laplacian"):
            if name in self.branches:
                w0 = getattr(self, name + "_1x1").weight[:, :, 0, 0]  # cout x cin
                k = (getattr(self, name + "_scale") * getattr(self, name + "_mask"))[:, 0]  # cout x 3 x 3
                w += k[:, None] * w0[:, :, None, None]
        if "identity" in self.branches:
            for c in range(self.cout):
                w[c, c, 1, 1] += 1.0
        conv = nn.Conv2d(self.cin, self.cout, 3, padding=1).to(w)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        return conv


# --------------------------------------------------------------------------- models

class ESPCN(nn.Module):
    """conv5x5 -> ReLU -> (depth-1) x [conv3x3 -> ReLU] -> conv3x3 to c*s^2 -> pixel shuffle -> clip."""

    def __init__(self, scale: int = 2, color: str = "y", width: int = 32, depth: int = 2):
        super().__init__()
        c = _check(scale, color)
        self.scale = scale
        layers = [nn.Conv2d(c, width, 5, padding=2), nn.ReLU(inplace=True)]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.tail = nn.Conv2d(width, c * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(x))).clamp(0.0, 1.0)


class FloorReLU(nn.Module):
    """max(x, -floor): a ReLU moved down by `floor`, so that its outputs are centred on zero.

    TensorRT's INT8 is symmetric (zero point 0): a ReLU's outputs, all >= 0, get 128 of the 256 codes.
    relu(z) - floor with floor = amax/2 spans [-amax/2, amax/2] and gets all of them, a grid twice as
    fine; the next conv's bias takes the shift back. `kdedge qat --centre` converts a ReLU student into
    this form (kdedge.distill.qat.centre). ONNX: one Clip with a min. Measured on CPUs it costs speed
    (OpenVINO U8S8 1.17x, ONNX Runtime FP32 1.06x slower than the ReLU graph; whether TensorRT fuses it
    is unmeasured): benchmarks/experiments/results/centred_speed.md.
    """

    def __init__(self, floor: float):
        super().__init__()
        self.floor = float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=-self.floor)

    def extra_repr(self) -> str:
        return "floor=%g" % self.floor


class AnchorNet(nn.Module):
    """head conv3x3 + ReLU, `depth` x [conv3x3 + ReLU], tail conv3x3 to c*s^2, + anchor, shuffle, clip.

    `body` is a Sequential whose odd entries are ReLUs (`FloorReLU(f)` for each f of `floors` when
    given: depth + 1 of them); feature distillation hooks pick layers of it by name (`body.1` is the
    head's activation, `body.3` the first middle block's, ...).
    """

    def __init__(self, scale: int = 2, color: str = "y", width: int = 24, depth: int = 2, block=None,
                 floors: Sequence[float] = ()):
        super().__init__()
        from kdedge.errors import KdedgeError

        c = _check(scale, color)
        self.scale = scale
        if floors and len(floors) != depth + 1:
            raise KdedgeError("anchor: %d floors for %d activations" % (len(floors), depth + 1),
                              fix="give one floor per activation (depth + 1), or none")
        act = (lambda i: FloorReLU(floors[i])) if floors else (lambda i: nn.ReLU(inplace=True))
        conv = block or (lambda i, o: nn.Conv2d(i, o, 3, padding=1))
        layers = [conv(c, width), act(0)]
        for i in range(depth):
            layers += [conv(width, width), act(i + 1)]
        self.body = nn.Sequential(*layers)
        self.tail = conv(width, c * scale * scale)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(x)) + _anchor(x, self.scale)).clamp(0.0, 1.0)


class RepAnchorNet(AnchorNet):
    """`AnchorNet` trained with `EdgeBlock`s; `reparameterize()` turns it into a plain AnchorNet in place."""

    def __init__(self, scale: int = 2, color: str = "y", width: int = 24, depth: int = 2,
                 branches: Sequence[str] = EdgeBlock.FAST_BRANCHES, expand: int = 2):
        super().__init__(scale, color, width, depth,
                         block=lambda i, o: EdgeBlock(i, o, tuple(branches), expand))

    @torch.no_grad()
    def reparameterize(self) -> "RepAnchorNet":
        """Fuse every EdgeBlock into one nn.Conv2d, in place (export calls this on a deep copy)."""
        for i, m in enumerate(self.body):
            if isinstance(m, EdgeBlock):
                self.body[i] = m.fused()
        if isinstance(self.tail, EdgeBlock):
            self.tail = self.tail.fused()
        return self


# --------------------------------------------------------------------------- registration

@register_model
def espcn(scale: int = 2, color: str = "y", width: int = 32, depth: int = 2) -> nn.Module:
    """ESPCN-class baseline (defaults: 32 wide, 5x5 + one 3x3 + sub-pixel conv; 11.2k MACs/LR px at x2, Y)."""
    return ESPCN(scale, color, width, depth)


@register_model
def anchor(scale: int = 2, color: str = "y", width: int = 24, depth: int = 2,
           floors: Sequence[float] = ()) -> nn.Module:
    """Plain INT8-friendly anchor network (defaults: 11.4k MACs/LR px at x2, Y); `floors`: centred
    activations (`FloorReLU`), what `kdedge qat --centre` writes."""
    return AnchorNet(scale, color, width, depth, floors=tuple(float(f) for f in floors))


@register_model
def repanchor(scale: int = 2, color: str = "y", width: int = 24, depth: int = 2,
              branches: Sequence[str] = EdgeBlock.FAST_BRANCHES, expand: int = 2) -> nn.Module:
    """Re-parameterisable anchor network; at its defaults it fuses into exactly the default `anchor`
    (11.4k MACs/LR px at x2, Y). Default branches: RepVGG's 3x3 + 1x1 + identity, which costs ~1.5x a
    plain step on a CPU; `branches=EdgeBlock.ECB_BRANCHES` (ECBSR's edge set) costs ~5x (measured)."""
    if isinstance(branches, str):
        branches = BRANCH_SETS.get(branches, tuple(b for b in branches.split(",") if b))
    return RepAnchorNet(scale, color, width, depth, tuple(branches), expand)


# Named branch sets for configs and flags: --branches ecb
BRANCH_SETS = {"fast": EdgeBlock.FAST_BRANCHES, "ecb": EdgeBlock.ECB_BRANCHES, "all": EdgeBlock.ALL_BRANCHES}


STUDENTS = registered_by(__name__)  # ("espcn", "anchor", "repanchor"): read back, never a hand-kept copy


def deploy_copy(module: nn.Module) -> nn.Module:
    """A deep copy ready for inference: re-parameterised when the module knows how."""
    m = copy.deepcopy(module)
    if hasattr(m, "reparameterize"):
        m.reparameterize()
    return m.eval()


def complexity(module: nn.Module, deploy: bool = True, in_channels: int = None) -> Dict[str, float]:
    """Parameters and multiply-accumulates per LR pixel, counted by hooking every conv on a 16x16 input.

    With `deploy=True` a re-parameterisable module is fused first, so the figures are what runs on the
    device. Returns {"params", "macs_per_lr_pixel"} (training-time parameters as "train_params").
    """
    train_params = sum(p.numel() for p in module.parameters())
    m = deploy_copy(module) if deploy else copy.deepcopy(module).eval()
    if in_channels is None:
        first = next(x for x in m.modules() if isinstance(x, nn.Conv2d))
        in_channels = first.in_channels
    macs = [0]

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        macs[0] += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * k

    handles = [x.register_forward_hook(hook) for x in m.modules() if isinstance(x, nn.Conv2d)]
    side = 16
    with torch.no_grad():
        m(torch.zeros(1, in_channels, side, side))
    for h in handles:
        h.remove()
    return {
        "params": sum(p.numel() for p in m.parameters()),
        "train_params": train_params,
        "macs_per_lr_pixel": macs[0] / (side * side),
    }

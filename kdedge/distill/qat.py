"""Quantization-aware fine-tuning: the student trained for the exact INT8 graph export will write.

Post-training quantization of the default student loses 0.05-0.07 dB in the symmetric INT8 form even
with float layers chosen by measurement, and those float layers (the identity-split Adds of 16
channels, the first conv) made its INT8 file slower than bf16 on OpenVINO (43 against 69 FPS model
only at 960x540; the QAT graph: 60, benchmarks/experiments/results/qat_default.md). QAT fine-tunes
the fused student with the ONNX Q/DQ simulated exactly, so that only the image-space residual
(`FLOAT_NODES`, 4 channels at LR) stays float:

- the re-parameterised convs are fused first (what export writes is what is trained);
- weights: per-output-channel symmetric INT8 with scale max|w|/127, as ONNX Runtime's quantizer
  computes it at export (nothing to learn, nothing to store);
- activations: symmetric per-tensor INT8 at exactly the tensors ONNX Runtime's QDQ quantizer puts a
  Q/DQ pair on (`_names`: the input and each conv + ReLU), scale amax/127, round half to even,
  saturate to [-128, 127] (QuantizeLinear's definition). The amax values start from a percentile
  calibration and are learned (LSQ, Esser et al. 2020: straight-through rounding, gradients to the
  range);
- the FP32 student it started from is the distillation target (0.5 L1 to it + 0.5 L1 to ground truth),
  so the fine-tune learns to absorb rounding, not to drift.

With `centre` (`kdedge qat --centre`, an option, not the shipped recipe) each ReLU becomes max(x, -f),
f = half its range, so that the symmetric grid covers its outputs twice as finely; the student re-learns
its borders in float first (`refit`), and its weights are trained and written on their INT8 grid.

The checkpoint it writes is the fused `anchor` network plus `qat.activation_amax` (ONNX tensor name ->
amax) and `qat.float_nodes` in its header; `kdedge export` writes those ranges into the Q/DQ files
instead of calibrating (`export.api._plan_qat`), and tests/test_qat.py checks that the Q/DQ file,
run by ONNX Runtime as the ONNX operators define it, matches this module's forward.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from kdedge.distill.stopper import Stopper
from kdedge.errors import KdedgeError

QMIN, QMAX = -128, 127  # int8 saturation of QuantizeLinear; symmetric scales use 127 (ORT: qmin=-127 for the scale)
CALIB_PERCENTILE = 99.99  # export's default PTQ method: the starting point QAT improves on


# The image-space residual stays float (ONNX nodes `/net/Concat`, `/net/Add`, then the pixel shuffle
# and the clip): quantizing the Add's output puts the whole output image on a symmetric INT8 grid, 127
# levels over [0, 1], whose rounding alone costs ~0.1 dB at 37 dB (measured: 0.114 dB on validation
# before fine-tuning, 0.10 after 1000 QAT steps; QAT cannot learn around a grid that coarse). Kept in
# float it is 4 channels at LR resolution, fused by OpenVINO into the tail conv's post-ops.
FLOAT_NODES = ("/net/Concat", "/net/Add")
# Optionally the first conv too (1 input channel: 1.5% of the default student's MACs). Symmetric INT8
# gives the [0, 1] input image 128 levels; with the first conv in float the network sees all 256 and
# its output is quantized instead. Post-training, on the validation split: 0.052 -> 0.034 dB drop.
FIRST_CONV = "/net/body/body.0/Conv"


def float_nodes(float_first_conv: bool) -> List[str]:
    return list(FLOAT_NODES) + ([FIRST_CONV] if float_first_conv else [])


def act_tensor(index: int, module) -> str:
    """The ONNX tensor of body activation `index` (`export_onnx` wraps the module as `net`): a ReLU
    exports as Relu, a centred `FloorReLU` as Clip."""
    from kdedge.models.students import FloorReLU

    return "/net/body/body.%d/%s_output_0" % (index, "Clip" if isinstance(module, FloorReLU) else "Relu")


def _names(net, float_first_conv: bool) -> List[str]:
    """ONNX tensors with a Q/DQ pair in the exported graph. ONNX Runtime's QDQ quantizer gives a
    ReLU's (or Clip's) input the output's quantization parameters, so each conv + activation pair has
    one range (the activation's); the tail conv's output feeds the float Add, and the input feeds
    only float nodes when the first conv is float."""
    return ([] if float_first_conv else ["lr"]) + [act_tensor(i, m) for i, m in enumerate(net.body) if i % 2]


def _shared(amax: Dict[str, float]) -> Dict[str, float]:
    """`amax` plus each body conv's output, which shares its activation's range."""
    import re

    out = dict(amax)
    for name in list(amax):
        hit = re.fullmatch(r"/net/body/body\.(\d+)/(Relu|Clip)_output_0", name)
        if hit:
            out["/net/body/body.%d/Conv_output_0" % (int(hit.group(1)) - 1)] = amax[name]
    return out


def fake_quant(x, amax):
    """Symmetric per-tensor INT8 quantize-dequantize with a learnable amax (straight-through rounding)."""
    scale = amax / 127.0
    q = torch.clamp(x / scale, QMIN, QMAX)
    return (q + (torch.round(q) - q).detach()) * scale


def fake_quant_weight(w):
    """Per-output-channel symmetric INT8 of a conv weight, scale max|w|/127 (ORT's, not learned)."""
    scale = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / 127.0
    q = torch.clamp(w / scale, -127, 127)
    return (q + (torch.round(q) - q).detach()) * scale


def _plain_anchor(module):
    """The fused AnchorNet inside a student (re-parameterised first); KdedgeError for other students."""
    import copy

    from kdedge.models.students import AnchorNet

    net = copy.deepcopy(module)
    if hasattr(net, "reparameterize"):
        net.reparameterize()
    if not isinstance(net, AnchorNet) or not all(type(m).__name__ in ("Conv2d", "ReLU", "FloorReLU") for m in net.body) \
            or type(net.tail).__name__ != "Conv2d":
        raise KdedgeError("QAT supports the anchor / repanchor students (got %s)" % type(module).__name__,
                          fix="fine-tune an anchor or repanchor checkpoint, or export with post-training INT8")
    return net.float().train()


def _convs(net) -> List[torch.nn.Conv2d]:
    """The convs of a fused anchor net in order: the body's, then the tail."""
    return [m for m in net.body if isinstance(m, torch.nn.Conv2d)] + [net.tail]


def _cosine(opt, steps: int):
    """Cosine decay of every group's learning rate to 0 over `steps` (flat after)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1))))


def centre(net, amax: Dict[str, float]):
    """A copy of the fused ReLU anchor `net` with each ReLU centred (`FloorReLU`, floor = amax/2).

    relu(z) - f = max(z - f, -f): each body conv's bias loses f, the activation becomes max(., -f), and
    the next conv's bias gains f * (sum of its weights), so the interior computes what `net` computed.
    Not the borders: zero padding now reads -f's place. The student has to re-learn them (`refit`).
    """
    import copy

    from kdedge.models.students import FloorReLU

    if floors(net):
        raise KdedgeError("this student's activations are centred already", fix="drop --centre, or start from its ReLU checkpoint")
    net = copy.deepcopy(net)
    convs = _convs(net)
    with torch.no_grad():
        for j, i in enumerate(range(1, len(net.body), 2)):
            floor = amax[act_tensor(i, net.body[i])] / 2
            convs[j].bias.sub_(floor)
            convs[j + 1].bias.add_(floor * convs[j + 1].weight.sum(dim=(1, 2, 3)))
            net.body[i] = FloorReLU(floor)
    return net


def floors(net) -> List[float]:
    """The floors of a centred anchor net's activations ([] for ReLUs)."""
    return [float(m.floor) for m in net.body if type(m).__name__ == "FloorReLU"]


class QuantSim(torch.nn.Module):
    """The fused student computing what the exported Q/DQ graph computes, with learnable ranges.

    `forward(x, quantize_activations=False)` is the same graph with float activations: for a centred
    student, the FP32 forward of the weights it will ship (its weights are written on their INT8 grid,
    `snap_weights`), because a floor f makes the next conv's weight rounding a constant error
    f * sum(rounding) that the float and the INT8 graph would otherwise each want a different bias for.
    """

    def __init__(self, module, amax: Dict[str, float], float_first_conv: bool = False):
        super().__init__()
        self.net = _plain_anchor(module)
        self.names = _names(self.net, float_first_conv)
        missing = [n for n in self.names if n not in amax]
        if missing:
            raise KdedgeError("QAT ranges lack %s" % ", ".join(missing[:3]), fix="calibrate with `calibrate_amax` first")
        # log-amax: positive by construction, and Adam steps are relative to the range
        self.log_amax = torch.nn.Parameter(torch.tensor([math.log(amax[n]) for n in self.names], dtype=torch.float32))
        self.float_first_conv = float_first_conv
        self.centred = bool(floors(self.net))
        self._quantized = set(map(id, self.quantized_convs()))  # the modules stay the same objects

    def amax(self) -> Dict[str, float]:
        return _shared(dict(zip(self.names, self.log_amax.detach().exp().tolist())))

    def quantized_convs(self) -> List[torch.nn.Conv2d]:
        convs = _convs(self.net)
        return convs[1:] if self.float_first_conv else convs

    def forward(self, x, quantize_activations: bool = True):
        from kdedge.models.students import _anchor

        q = dict(zip(self.names, self.log_amax.exp()))
        fq = fake_quant if quantize_activations else (lambda t, a: t)  # noqa: E731
        anchor = _anchor(x, self.net.scale)  # float: FLOAT_NODES
        h = x if self.float_first_conv else fq(x, q["lr"])
        for i, m in enumerate(self.net.body):
            if isinstance(m, torch.nn.Conv2d):
                w = fake_quant_weight(m.weight) if id(m) in self._quantized else m.weight
                h = F.conv2d(h, w, m.bias, padding=m.padding)
            else:  # ONNX Runtime's pairs: conv -> Q/DQ -> activation -> Q/DQ, both on the activation's range
                a = q[act_tensor(i, m)]
                if isinstance(m, torch.nn.ReLU):
                    h = F.relu(fq(h, a))  # on the grid already: the second pair changes nothing
                else:
                    h = fq(m(fq(h, a)), a)  # -floor lies between grid points: the second pair rounds it
        t = self.net.tail
        y = F.conv2d(h, fake_quant_weight(t.weight), t.bias, padding=t.padding) + anchor
        return F.pixel_shuffle(y, self.net.scale).clamp(0.0, 1.0)


class _FloatActivations(torch.nn.Module):
    """A QuantSim with float activations (its weights still on their grid): a module for `val_psnr`."""

    def __init__(self, sim: QuantSim):
        super().__init__()
        self.sim = sim

    def forward(self, x):
        return self.sim(x, quantize_activations=False)


def float_forward(sim: QuantSim) -> torch.nn.Module:
    """The FP32 graph of `sim`'s weights as they will ship: float weights for a ReLU student, the
    weights on their grid for a centred one (see QuantSim)."""
    return _FloatActivations(sim) if sim.centred else sim.net


@torch.no_grad()
def snap_weights(sim: QuantSim) -> None:
    """Write each quantized conv's weights on their INT8 grid (idempotent: the largest stays the largest)."""
    for m in sim.quantized_convs():
        m.weight.copy_(fake_quant_weight(m.weight))


def calibrate_amax(module, batches, percentile: float = CALIB_PERCENTILE) -> Dict[str, float]:
    """Percentile of |x| per quantized tensor of the fused float network over `batches` (N, C, h, w)."""
    net = _plain_anchor(module).eval()
    seen: Dict[str, List[np.ndarray]] = {}

    def keep(name, t):
        seen.setdefault(name, []).append(t.detach().abs().flatten().cpu().numpy())

    with torch.no_grad():
        for x in batches:
            keep("lr", x)
            h = x
            for i, m in enumerate(net.body):
                h = m(h)
                if i % 2:
                    keep(act_tensor(i, m), h)
    return _shared({n: max(float(np.percentile(np.concatenate(v), percentile)), 1e-6) for n, v in seen.items()})


@dataclass
class QatConfig:
    steps: int = 5000  # the shipped students' recipe (benchmarks/experiments/results/qat_*.md)
    batch: int = 16
    patch: int = 48  # LR pixels
    lr: float = 1e-4  # weights: a fine-tune of a converged student, cosine to 0 (1e-4 beat 2e-5 and 3e-4 on validation)
    lr_amax: float = 1e-3  # log-amax
    gt_weight: float = 0.5  # the rest goes to the FP32 student's output
    # The same loss on the float forward of the same weights, added with this weight: without it the
    # weights drift to suit the quantized graph only (its learned ranges clip activations the float
    # graph does not), and the bundle's FP32 file, exported from them, got worse (fast student:
    # Set5 FP32 35.10 -> 35.04 after 5000 steps while INT8 rose 34.98 -> 35.05).
    fp32_weight: float = 0.5
    eval_interval: int = 500
    seed: int = 0
    float_first_conv: bool = False
    # Synthetic text-and-graphics images (kdedge.data.synthetic, 512 px) added to the training patches:
    # ranges learned on photos alone clip what sharp saturated edges produce. 32 (about a fifth of the
    # patches) beat 0 and 96 on validation for the default student (benchmarks/experiments/results/qat_graphics.md)
    graphics: int = 32
    val_graphics: int = 8  # such images (another seed) joining the validation split the best step is picked on
    # Centred activations (`centre`): each ReLU's outputs moved to [-amax/2, amax/2], where the
    # symmetric INT8 grid is twice as fine. The converted student re-learns its borders in float first
    # (`refit_steps` at `refit_lr`, cosine), then QAT runs as above with its weights on their grid.
    centre: bool = False
    refit_steps: int = 6000
    refit_lr: float = 3e-4


GRAPHICS_VAL_SEED = 999  # the validation graphics' seed: never a training seed's images


def finetune(model, sampler, val_psnr: Callable, cfg: QatConfig, log: Callable[[str], None] = print,
             calib_batches: int = 8, device: str = "cpu"):
    """QAT of `model` (an SRModel with an anchor-family module) on patches from `sampler`.

    `val_psnr(module) -> dB` scores a torch module on the validation split (never a test set). Returns
    (sim, history, refit_history): the QuantSim at the best validation step, with its learned ranges,
    the QAT validations, and those of the float refit (`cfg.centre` only).
    """
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    to_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    model = replace(model, module=model.module.to(device))
    calib = [to_t(sampler.sample(cfg.batch, rng)["lr"]) for _ in range(calib_batches)]
    fp32 = _plain_anchor(model.module).eval()
    for p in fp32.parameters():
        p.requires_grad_(False)

    def objective(y, hr, target):
        return cfg.gt_weight * F.l1_loss(y, hr) + (1 - cfg.gt_weight) * F.l1_loss(y, target)

    def batch():
        b = sampler.sample(cfg.batch, rng)
        x = to_t(b["lr"])
        with torch.no_grad():
            return x, to_t(b["hr"]), fp32(x)

    stopper = Stopper()  # SIGINT/SIGTERM: validate the step reached, keep the best so far, stop
    refit_history: List[Dict[str, float]] = []
    try:
        net = model.module
        if cfg.centre:
            net = refit(centre(fp32, calibrate_amax(fp32, calib)), batch, objective, val_psnr, cfg, log, stopper, refit_history)
        sim = QuantSim(net, calibrate_amax(net, calib), cfg.float_first_conv).to(device)
        sim, history = _qat(sim, batch, objective, val_psnr, cfg, log, stopper)
        return sim, history, refit_history
    finally:
        stopper.restore()


def refit(net, batch, objective, val_psnr, cfg: QatConfig, log, stopper, history):
    """Float fine-tune of a freshly centred net (every layer, cosine from `cfg.refit_lr`): the borders,
    where zero padding now means -floor, are re-learned; the interior starts exactly right."""
    net = net.train()
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.refit_lr)
    steps = cfg.refit_steps
    sched = _cosine(opt, steps)
    t0 = time.time()
    v = val_psnr(net.eval())
    history.append({"step": 0, "val_psnr_fp32": v, "seconds": 0.0})
    log("refit of the centred student: validation FP32 %.4f dB at the start" % v)
    for step in range(1, steps + 1):
        x, hr, target = batch()
        loss = objective(net.train()(x), hr, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % (4 * cfg.eval_interval) == 0 or step == steps or stopper.signal is not None:
            v = val_psnr(net.eval())
            history.append({"step": step, "val_psnr_fp32": v, "loss": loss.item(),
                            "seconds": round(time.time() - t0, 1)})
            log("refit step %d/%d: loss %.5f, validation FP32 %.4f dB (%.0f s)" % (step, steps, loss.item(), v, time.time() - t0))
        if stopper.signal is not None:
            log("refit: %s received at step %d: QAT is skipped, the refitted student is kept" % (stopper.signal, step))
            break
    return net.eval()


def _qat(sim: QuantSim, batch, objective, val_psnr, cfg: QatConfig, log, stopper):
    """The QAT loop of `finetune` (after the refit, for a centred student)."""
    import copy

    float_graph = float_forward(sim)
    history: List[Dict[str, float]] = []
    opt = torch.optim.Adam([{"params": sim.net.parameters(), "lr": cfg.lr},
                            {"params": [sim.log_amax], "lr": cfg.lr_amax}])
    sched = _cosine(opt, cfg.steps)
    history.append({"step": 0, "val_psnr": val_psnr(sim.eval()), "val_psnr_fp32": val_psnr(float_graph.eval()), "seconds": 0.0})
    log("QAT start: fake-quant validation %.4f dB (FP32 %.4f)" % (history[-1]["val_psnr"], history[-1]["val_psnr_fp32"]))
    best = (history[-1]["val_psnr"], copy.deepcopy(sim.state_dict()))
    t0 = time.time()
    steps = 0 if stopper.signal is not None else cfg.steps  # stopped during the refit: no QAT
    for step in range(1, steps + 1):
        x, hr, target = batch()
        loss = objective(sim.train()(x), hr, target)
        if cfg.fp32_weight:
            loss = loss + cfg.fp32_weight * objective(float_graph.train()(x), hr, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        stopping = stopper.signal is not None
        if step % cfg.eval_interval == 0 or step == cfg.steps or stopping:
            v, vf = val_psnr(sim.eval()), val_psnr(float_graph.eval())
            history.append({"step": step, "val_psnr": v, "val_psnr_fp32": vf, "loss": loss.item(),
                            "seconds": round(time.time() - t0, 1)})
            log("QAT step %d/%d: loss %.5f, validation fake-quant %.4f dB, FP32 %.4f dB (%.0f s)"
                % (step, cfg.steps, loss.item(), v, vf, time.time() - t0))
            if v > best[0]:
                best = (v, copy.deepcopy(sim.state_dict()))
        if stopping:
            log("QAT: %s received: stopped at step %d of %d, keeping the best step so far" % (stopper.signal, step, cfg.steps))
            break
    sim.load_state_dict(best[1])
    if sim.centred:
        snap_weights(sim)  # what ships is what the float branch trained: the weights on their grid
    return sim.eval(), history


def save_qat_checkpoint(path, sim, model, history, cfg: QatConfig, val_fp32: float, refit_history=()) -> None:
    """The fused anchor net + its learned ranges: a normal kdedge checkpoint `kdedge export` reads."""
    from dataclasses import asdict

    from kdedge.checkpoint import save_checkpoint

    net = sim.net
    args = {"width": net.tail.in_channels, "depth": (len(net.body) - 2) // 2}
    if sim.centred:
        args["floors"] = floors(net)
    floats = float_nodes(cfg.float_first_conv)
    qat = {"activation_amax": sim.amax(), "float_nodes": floats,
           "form": "int8 symmetric per-tensor activations%s, per-channel weights; float: %s"
                   % (" (centred: FloorReLU)" if sim.centred else "", ", ".join(floats)),
           "config": asdict(cfg), "history": history, "refit_history": list(refit_history), "val_psnr_fp32_start": val_fp32,
           "source": (model.meta or {}).get("checkpoint")}
    save_checkpoint(path, net, arch="anchor", model_args=args, scale=model.scale, color=model.color,
                    step=history[-1]["step"], best_metric=max(h["val_psnr"] for h in history),
                    teacher=(model.meta or {}).get("teacher"), extra={"qat": qat})


def load_student(spec: str):
    """An SRModel from a checkpoint, or from a kdedge bundle folder of an anchor-family student (its FP32
    ONNX weights in the fused `anchor` net: how the shipped bundles, whose training checkpoints are not
    shipped, are fine-tuned)."""
    import json
    import os

    from kdedge.models.loading import load_model

    manifest = os.path.join(spec, "manifest.json")
    if not os.path.isfile(manifest):
        return load_model(spec)
    import onnx
    from onnx import numpy_helper

    from kdedge.models import create_model
    from kdedge.models.descriptor import SRModel

    with open(manifest, encoding="utf-8") as f:
        m = json.load(f)
    student = (m.get("source") or {}).get("student") or {}
    if student.get("arch") not in ("anchor", "repanchor"):
        raise KdedgeError("bundle %s holds a %s student; QAT supports anchor / repanchor" % (spec, student.get("arch")),
                          fix="give the student's checkpoint instead")
    args = {k: student["model_args"][k] for k in ("width", "depth", "floors") if k in student["model_args"]}
    module = create_model("anchor", scale=m["scale"], color=m["color"], **args)
    proto = onnx.load(os.path.join(spec, m["precisions"]["fp32"]["file"]))
    weights = {i.name[len("net."):]: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in proto.graph.initializer if i.name.startswith("net.")}
    module.load_state_dict(weights, strict=True)
    fp32 = m["precisions"]["fp32"]
    # the file is named with its sha256: a shipped bundle is replaced in place once its QAT fine-tune ships
    source = "%s (sha256 %s)" % (os.path.join(spec, fp32["file"]), fp32.get("sha256", "?"))
    return SRModel(module=module.eval(), arch="anchor", scale=m["scale"], color=m["color"], model_args=args,
                   meta={"checkpoint": source, "teacher": (m.get("source") or {}).get("teacher")})


def graphics_validation(count: int):
    """The synthetic text-and-graphics validation images (a seed no training run draws)."""
    from kdedge.data.synthetic import graphics_images
    from kdedge.distill.data import Image

    return [Image("graphics-val/%d" % i, px) for i, px in enumerate(graphics_images(count, seed=GRAPHICS_VAL_SEED))]


def score_by_subset(model, sim, subsets) -> Dict[str, Dict[str, float]]:
    """{subset: {"fp32": dB of the student `model` holds, "int8": dB of `sim`, "fp32_shipped": dB of
    `sim`'s own float graph (the bundle's FP32 file)}} on each non-empty validation subset (name -> pairs)."""
    from kdedge.distill.data import validate_psnr

    start, shipped = _plain_anchor(model.module).eval(), float_forward(sim).eval()
    score = lambda module, pairs: round(validate_psnr(replace(model, module=module), pairs), 4)  # noqa: E731
    return {name: {"fp32": score(start, pairs), "int8": score(sim, pairs), "fp32_shipped": score(shipped, pairs)}
            for name, pairs in subsets.items() if pairs}


def run_qat(checkpoint: str, out: str, cfg: QatConfig, data=(), val_holdout: int = 8,
            log: Callable[[str], None] = print, device: str = "cpu") -> Dict[str, object]:
    """`kdedge qat`: load, split train/validation, fine-tune, write `out/qat.safetensors` + `out/qat.json`."""
    import json
    import os

    from kdedge.common import atomic_write_bytes
    from kdedge.distill.config import TrainConfig
    from kdedge.data.synthetic import graphics_images
    from kdedge.distill.data import Image, PatchSampler, make_sample, make_val_pairs, validate_psnr
    from kdedge.distill.inputs import load_images

    model = load_student(checkpoint)
    if model.color != "y":
        raise KdedgeError("QAT supports Y students (got %s)" % model.color, fix="use a --color y student")
    _plain_anchor(model.module)  # fail before loading images
    # the trainer's split: the last `val_holdout` images of --data, or the embedded validation photos
    train, val = load_images(TrainConfig(data=list(data), val_holdout=val_holdout, patch=cfg.patch, scale=model.scale))
    train += [Image("graphics/%03d" % i, px) for i, px in enumerate(graphics_images(cfg.graphics, seed=cfg.seed))]
    val_gfx = graphics_validation(cfg.val_graphics)
    log("QAT: %d training images (%d synthetic graphics), %d validation images (%s) + %d synthetic graphics"
        % (len(train), cfg.graphics, len(val), ", ".join(i.name for i in val[:4]), len(val_gfx)))
    sampler = PatchSampler([make_sample(im, model.scale, model.color) for im in train], [], cfg.patch, model.scale)
    subsets = {"photos": make_val_pairs(val, model.scale), "graphics": make_val_pairs(val_gfx, model.scale)}
    pairs = subsets["photos"] + subsets["graphics"]
    score = lambda module: validate_psnr(replace(model, module=module), pairs)  # noqa: E731
    sim, history, refit_history = finetune(model, sampler, score, cfg, log, device=device)
    # the fused student before fine-tuning (a centred one's QAT starts after its refit)
    fp32_psnr = score(_plain_anchor(model.module).eval()) if cfg.centre else history[0]["val_psnr_fp32"]
    # FP32 (the student fine-tuning started from) and INT8 (the step kept), each validation subset apart
    by_subset = score_by_subset(model, sim, subsets)
    for name, v in by_subset.items():
        log("validation %s: FP32 %.4f dB, INT8 %.4f dB (drop %.4f)" % (name, v["fp32"], v["int8"], v["fp32"] - v["int8"]))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "qat.safetensors")
    save_qat_checkpoint(path, sim, model, history, cfg, fp32_psnr, refit_history)
    summary = {"checkpoint": path, "source": checkpoint, "val_images": [i.name for i in val],
               "val_psnr_fp32": round(fp32_psnr, 4), "val_psnr_int8_start": round(history[0]["val_psnr"], 4),
               "val_psnr_int8_best": round(max(h["val_psnr"] for h in history), 4),
               "val_psnr_fp32_at_best": round(max(history, key=lambda h: h["val_psnr"])["val_psnr_fp32"], 4),
               "val_by_subset": by_subset, "history": history, "refit_history": refit_history}
    atomic_write_bytes(os.path.join(out, "qat.json"), (json.dumps(summary, indent=1) + "\n").encode())
    return summary

"""Quantization-aware fine-tuning: a trained student made for the INT8 graph it will run.

Takes a checkpoint of an anchor / repanchor student (what `kdedge distill` writes), fuses it, and
fine-tunes it with the exported Q/DQ graph simulated exactly (per-channel INT8 weights, per-tensor
INT8 activations with learned ranges), distilling from the FP32 student itself and the ground truth,
with the same loss on the float forward so the FP32 file stays as good. The checkpoint it writes
carries the learned ranges; `kdedge export` puts them into the INT8 files instead of calibrating.
Only the image-space residual (and, with --float-first-conv, the 1-channel first conv) stays float:
no identity-split Adds, the graph OpenVINO runs 1.4x faster than the post-training one.

--centre moves each ReLU's outputs down by half their range (a `FloorReLU`, exported as one Clip):
TensorRT's symmetric INT8 then spends all 256 codes on them instead of 128. The converted student first
re-learns its image borders in float (--refit-steps), then QAT runs with its weights on their INT8 grid.
On the distilled 16x5 student (the previous default) it halves the symmetric drop (Set5 0.096 -> 0.051 dB) but costs 0.04 dB in FP32
and U8S8 and runs 5-17% slower on CPU engines: for deployments that run only the symmetric (TensorRT)
file (benchmarks/experiments/results/int8_grid.md).

Photos alone teach ranges that clip sharp saturated edges (slides, screens, signs): --graphics adds
OpenCV-drawn text-and-graphics images to the training patches (32 by default).

Validation (for picking the best step) is never a test set: the last --val-holdout images of --data
(or scikit-image's `coffee` and `camera` without --data) plus --val-graphics synthetic images drawn
with a seed no training run uses; qat.json reports both subsets apart.

examples:
  kdedge qat runs/distill/last.safetensors --out runs/qat/                 # embedded images, ~10 min on 2 cores
  kdedge qat kdedge/assets/student_x2.safetensors --data ../shared/data/train/T91 \\
      --data ../shared/data/train/BSD200 --float-first-conv --out runs/qat_default/   # the shipped default's recipe
  kdedge qat kdedge/assets/fast_x2 --lr 3e-4 --graphics 0 --data ...       # a bundle folder as the starting point (the fast recipe)
  kdedge qat CKPT --float-first-conv --centre --steps 3000 --data ...     # centred activations, for TensorRT's symmetric INT8
  kdedge qat CKPT --device cuda ...                                       # on a GPU; Ctrl-C keeps the best step so far
  kdedge export runs/qat_default/qat.safetensors --int8 --u8s8 --out bundle/
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kdedge.distill.qat import QatConfig

    d = QatConfig()
    parser.add_argument("checkpoint", help="kdedge checkpoint of an anchor / repanchor student, or a bundle folder of one")
    parser.add_argument("--out", default="runs/qat", help="run folder; writes qat.safetensors and qat.json (default: runs/qat)")
    parser.add_argument("--data", action="append", default=[], metavar="DIR",
                        help="HR training image folder (repeatable; default: scikit-image's embedded photos)")
    parser.add_argument("--val-holdout", type=int, default=8, help="images held out of --data for validation (default 8)")
    parser.add_argument("--steps", type=int, default=d.steps, help="fine-tuning steps (default %d)" % d.steps)
    parser.add_argument("--batch", type=int, default=d.batch, help="patches per step (default %d)" % d.batch)
    parser.add_argument("--patch", type=int, default=d.patch, help="LR patch size (default %d)" % d.patch)
    parser.add_argument("--lr", type=float, default=d.lr, help="weight learning rate, cosine to 0 (default %g)" % d.lr)
    parser.add_argument("--lr-amax", type=float, default=d.lr_amax, help="learning rate of the log activation ranges (default %g)" % d.lr_amax)
    parser.add_argument("--gt-weight", type=float, default=d.gt_weight,
                        help="share of the ground-truth L1 in the loss; the rest is L1 to the FP32 student (default %g)" % d.gt_weight)
    parser.add_argument("--fp32-weight", type=float, default=d.fp32_weight,
                        help="weight of the same loss on the float forward of the weights, so the bundle's FP32 file "
                             "stays good too (default %g; 0 = train the quantized graph only)" % d.fp32_weight)
    parser.add_argument("--eval-interval", type=int, default=d.eval_interval, help="steps between validations (default %d)" % d.eval_interval)
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed (default %d)" % d.seed)
    parser.add_argument("--float-first-conv", action="store_true", default=False,
                        help="keep the first conv in float (1 input channel, ~1.5%% of the MACs): the network sees the "
                             "input at 256 levels instead of symmetric INT8's 128")
    parser.add_argument("--graphics", type=int, default=d.graphics, metavar="N",
                        help="synthetic text/graphics images (512 px) added to the training patches, so that the learned "
                             "ranges do not clip sharp saturated edges (slides, screens, signs) (default %d)" % d.graphics)
    parser.add_argument("--val-graphics", type=int, default=d.val_graphics, metavar="N",
                        help="synthetic graphics images (another seed) in the validation split (default %d)" % d.val_graphics)
    parser.add_argument("--centre", action="store_true", default=False,
                        help="centre the activations (ReLU -> max(x, -amax/2), next bias compensates) for a symmetric "
                             "INT8 grid twice as fine; adds a float refit of the borders first (anchor students)")
    parser.add_argument("--refit-steps", type=int, default=d.refit_steps,
                        help="with --centre: float fine-tuning steps before QAT (default %d)" % d.refit_steps)
    parser.add_argument("--refit-lr", type=float, default=d.refit_lr,
                        help="with --centre: learning rate of the refit, cosine to 0 (default %g)" % d.refit_lr)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto",
                        help='"auto" (cuda if available), "cpu", "cuda", "cuda:1" (default: auto)')


def run(args) -> int:
    import json
    import os

    from kdedge.distill.qat import QatConfig, run_qat
    from kdedge.errors import KdedgeError

    if args.graphics < 0 or args.val_graphics < 0:
        raise KdedgeError("--graphics and --val-graphics count images: they must be >= 0", fix="e.g. --graphics 32")
    if args.steps < 1 or args.batch < 1 or args.patch < 8 or args.eval_interval < 1:
        raise KdedgeError("--steps, --batch, --eval-interval must be >= 1 and --patch >= 8", fix="check the numbers")
    if args.centre and args.refit_steps < 0:
        raise KdedgeError("--refit-steps must be >= 0 (got %d)" % args.refit_steps, fix="e.g. --refit-steps 6000")
    if args.fp32_weight < 0:
        raise KdedgeError("--fp32-weight must be >= 0 (got %g)" % args.fp32_weight, fix="e.g. --fp32-weight 0.5")
    if not 0.0 <= args.gt_weight <= 1.0:
        raise KdedgeError("--gt-weight must be in [0, 1] (got %g)" % args.gt_weight, fix="e.g. --gt-weight 0.5")
    from kdedge.distill.trainer import resolve_device

    device = resolve_device(args.device)  # a clear error when CUDA is asked for and absent
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = QatConfig(steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr, lr_amax=args.lr_amax,
                    gt_weight=args.gt_weight, eval_interval=args.eval_interval, seed=args.seed,
                    float_first_conv=args.float_first_conv, fp32_weight=args.fp32_weight,
                    graphics=args.graphics, val_graphics=args.val_graphics, centre=args.centre,
                    refit_steps=args.refit_steps, refit_lr=args.refit_lr)
    summary = run_qat(args.checkpoint, args.out, cfg, data=args.data, val_holdout=args.val_holdout, device=str(device))
    print(json.dumps({k: summary[k] for k in ("checkpoint", "val_psnr_fp32", "val_psnr_int8_start", "val_psnr_int8_best", "val_psnr_fp32_at_best")}, indent=1))
    print("\nnext:\n  kdedge export %s --int8 --u8s8 --out %s" % (summary["checkpoint"], os.path.join(args.out, "bundle")))
    return 0

"""The INT8 step of `kdedge export`: candidate graphs -> activation ranges -> float-kept nodes -> Q/DQ files.

For each candidate graph (the exported one and, when it has fused identities, the exact
identity-split rewrite, export/rewrite.py) `plan_int8` takes the activation ranges from
`int8_ranges` (calibration by four methods, the one with the lowest estimated drop chosen) and the
nodes to keep in float from `keep_in_float` (the sensitivity pass, quantize.py); the graph with the
lower estimated drop wins. `export_int8` then writes the symmetric INT8 file (TensorRT form), the
naive all-INT8 min/max baseline (measured, never shipped) and, when asked, the asymmetric U8S8
variant. Drops are estimated on the calibration images, never on the ones the gate decides on.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from kdedge.export.staging import WORK_PREFIX
from kdedge.export.steps import Artifact, Images, Stamp, logged


class Int8Plan(NamedTuple):
    stats: Any  # calibration statistics of the graph (calibrate.collect_statistics)
    method: str  # the range method chosen
    method_drops: Dict[str, float]  # estimated all-INT8 drop (dB) per method tried
    ranges: Dict[str, Any]  # activation ranges of `method`
    excluded: List[str]  # nodes kept in float
    sensitivity: Optional[Dict[str, Any]]  # the sensitivity pass, for the manifest (None with --no-mixed)
    final_drop: float  # estimated drop of the planned graph
    u8s8_ranges: Optional[Dict[str, Any]] = None  # QAT: the learned ranges in asymmetric form (else from `method`)


class Int8Result(NamedTuple):
    artifacts: Dict[str, Artifact]  # int8, int8_naive_minmax, (int8_u8s8), in table order
    sensitivity: Optional[Dict[str, Any]]
    method_drops: Dict[str, float]


def export_int8(model, fp32: Path, folder: Path, files: Dict[str, str], images: Images, opts, stamp: Stamp) -> Int8Result:
    """Plan every candidate graph, write the best one's INT8 file (and U8S8 with opts.u8s8)."""
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz
    from kdedge.export.onnx_export import save_model, set_metadata

    log, t0 = opts.log, time.time()
    drop_of = drop_estimator(model, fp32, images.calib_set)
    with tempfile.TemporaryDirectory(prefix="%s%d-" % (WORK_PREFIX, os.getpid())) as work:  # pid: see clean_stale
        qat = (model.meta or {}).get("qat")
        # a QAT student was trained for the plain graph: no identity-split candidate to build
        graphs, split_nodes = ({"plain": fp32}, []) if qat else _candidate_graphs(fp32, Path(work))
        plans = {g: (plan_qat(path, qat, images.calib_inputs, drop_of, log) if qat else
                     plan_int8(path, images.calib_inputs, drop_of, opts, g)) for g, path in graphs.items()}
        graph = min(plans, key=lambda g: plans[g].final_drop)
        plan, source = plans[graph], graphs[graph]
        graph_drops = {g: round(p.final_drop, 4) for g, p in plans.items()}
        if len(plans) > 1:
            log("INT8 graph: %s (estimated drop %s)" % (graph, graph_drops))
        int8 = qz.quantize_qdq(source, plan.ranges, excluded=plan.excluded)
        form = qz.check_qdq_form(int8)
        set_metadata(int8, stamp.metadata(model, kdedge_precision="int8", kdedge_calibration=plan.method,
                                          kdedge_excluded_nodes=",".join(plan.excluded)))
        logged(log, "int8", save_model(int8, folder / files["int8"]), t0)
        calibration = plan.method if plan.method != "percentile" else "percentile-%g" % cal.DEFAULT_PERCENTILE
        if qat:
            calibration = qat_calibration_label(qat)
        artifacts = {"int8": Artifact({"file": files["int8"], "quantization": {
            "activations": "int8-symmetric", "weights": "int8-per-channel-symmetric", "calibration": calibration,
            "calibration_images": len(images.calib_inputs), "calibration_folder": images.calib_label,
            "method_estimated_drop_db_on_calibration_set": plan.method_drops,
            "excluded_nodes": plan.excluded, "qdq_counts": form,
            "graph": graph, "identity_split_convs": split_nodes if graph == "identity-split" else [],
            "graph_estimated_drop_db": graph_drops, "sensitivity": plan.sensitivity,
        }}, int8)}
        if qat:  # provenance of the learned ranges: where the fine-tune started, its recipe
            artifacts["int8"].entry["quantization"]["qat"] = {k: qat.get(k) for k in ("source", "config", "val_psnr_fp32_start", "form")}
            # post-training quantization of the same graph and float nodes: the gate shows it beside QAT
            artifacts["int8_ptq"] = Artifact(None, qz.quantize_qdq(fp32, cal.ranges(plan.stats, cal.DEFAULT_METHOD),
                                                                  excluded=plan.excluded))
        # the baseline the chosen method and exclusions are judged against: all-INT8, min/max ranges
        naive = qz.quantize_qdq(fp32, cal.ranges(plans["plain"].stats, "minmax"))
        artifacts["int8_naive_minmax"] = Artifact(None, naive)
        if opts.u8s8:
            artifacts["int8_u8s8"] = _export_u8s8(model, source, plan, folder, files["int8_u8s8"], stamp, log, t0)
    return Int8Result(artifacts, plan.sensitivity, plan.method_drops)


def _export_u8s8(model, source: Path, plan: Int8Plan, folder: Path, file: str, stamp: Stamp, log, t0: float) -> Artifact:
    """Asymmetric U8S8 Q/DQ (faster on ONNX Runtime CPU): the INT8 plan's method and float nodes."""
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz
    from kdedge.export.onnx_export import save_model, set_metadata

    ranges = plan.u8s8_ranges or cal.ranges(plan.stats, plan.method, symmetric=False)
    u8 = qz.quantize_qdq(source, ranges, excluded=plan.excluded, u8s8=True)
    set_metadata(u8, stamp.metadata(model, kdedge_precision="int8_u8s8"))
    logged(log, "int8_u8s8", save_model(u8, folder / file), t0)
    return Artifact({"file": file, "quantization": {
        "activations": "uint8-asymmetric", "weights": "int8-per-channel-symmetric",
        "calibration": plan.method, "excluded_nodes": plan.excluded}}, u8)


def drop_estimator(model, fp32: Path, calib_set) -> Callable[[Any], float]:
    """proto -> estimated PSNR drop (dB) against FP32 on the calibration images.

    The sensitivity pass scores dozens of candidate graphs: on the runtime's ONNX Runtime backend,
    the engine the gate decides on (OpenVINO compiles per input shape, slow for one-off graphs)."""
    from kdedge.evaluate import BackendUpscaler
    from kdedge.export.onnx_export import open_onnx

    with open_onnx(fp32) as be:
        estimate = calib_set.drop_estimator(BackendUpscaler(be, model.scale, model.color, "fp32"))

    def drop_of(proto) -> float:
        with open_onnx(proto) as be:
            return estimate(BackendUpscaler(be, model.scale, model.color, "candidate"))

    return drop_of


def _candidate_graphs(fp32: Path, work: Path):
    """({"plain": fp32, ("identity-split": rewrite)}, the convolutions split): each is planned on its own."""
    import onnx

    from kdedge.export.onnx_export import save_model
    from kdedge.export.rewrite import split_identity

    graphs = {"plain": fp32}
    split_proto, split_nodes = split_identity(onnx.load(str(fp32)))
    if split_nodes:
        graphs["identity-split"] = save_model(split_proto, work / "split.onnx")
    return graphs, split_nodes


def plan_int8(path, calib_inputs, drop_of, opts, label: str) -> Int8Plan:
    """The ranges (`int8_ranges`), then, with opts.mixed_precision, the nodes kept in float."""
    plan = int8_ranges(path, calib_inputs, drop_of, opts.calib_method, opts.log, label)
    return keep_in_float(path, plan, drop_of, opts.gate_db, opts.log, label) if opts.mixed_precision else plan


def int8_ranges(path, calib_inputs, drop_of, calib_method: str, log, label: str) -> Int8Plan:
    """The one place activation ranges come from: calibration statistics of `path` on `calib_inputs`,
    ranges by each method (all four with "auto"), the method with the lowest estimated drop kept."""
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz

    t0 = time.time()
    stats = cal.collect_statistics(path, calib_inputs)
    methods = list(cal.METHODS) if calib_method == "auto" else [calib_method]
    all_ranges = {m: cal.ranges(stats, m) for m in methods}
    method_drops = {m: round(drop_of(qz.quantize_qdq(path, all_ranges[m])), 4) for m in methods}
    chosen = min(methods, key=lambda m: method_drops[m])
    log("[%s] calibration on %d images: all-INT8 estimated drop by method %s -> %s (%.1f s)"
        % (label, len(calib_inputs), method_drops, chosen, time.time() - t0))
    return Int8Plan(stats, chosen, method_drops, all_ranges[chosen], [], None, method_drops[chosen])


def keep_in_float(path, plan: Int8Plan, drop_of, max_drop: float, log, label: str) -> Int8Plan:
    """The sensitivity pass (quantize.sensitivity): the nodes to keep in float, and the drop that leaves."""
    from kdedge.export import quantize as qz

    t0 = time.time()
    # Target well under the gate: the float nodes it picks are the thin ends of the net and the
    # element-wise adds (default student: residual Add + Concat, first and last conv, the split
    # identity Adds: 9% of its MACs; the two wide body convs stay INT8).
    sens = qz.sensitivity(path, plan.ranges, drop_of, target_drop=min(0.02, max_drop / 4))
    log("[%s] sensitivity: all-INT8 estimated drop %.3f dB; kept in float: %s -> %.3f dB (%.1f s)"
        % (label, sens.all_quantized_drop, sens.excluded or "none", sens.final_drop, time.time() - t0))
    return plan._replace(excluded=sens.excluded, sensitivity=sens.to_dict(), final_drop=sens.final_drop)


def plan_qat(path, qat: Dict[str, Any], calib_inputs, drop_of, log) -> Int8Plan:
    """The INT8 plan of a `kdedge qat` checkpoint: its learned ranges and the float nodes it trained with.

    Calibration still runs, for the tensors QAT does not quantize and for the PTQ row. U8S8 gets the
    same ranges, non-negative tensors as [0, amax] (twice the symmetric grid's resolution, which
    only removes rounding noise QAT trained against), centred ones as [-floor, amax].
    """
    import onnx

    from kdedge.errors import KdedgeError
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz

    learned = {k: float(v) for k, v in (qat.get("activation_amax") or {}).items()}
    stats = cal.collect_statistics(path, calib_inputs)
    excluded = list(qat.get("float_nodes") or [])
    unknown = sorted(set(learned) - set(stats)) + sorted(set(excluded) - {n.name for n in onnx.load(str(path)).graph.node})
    if not learned or unknown:
        raise KdedgeError("the QAT ranges of this checkpoint do not match its exported graph (%s)"
                          % (", ".join(unknown[:3]) or "no ranges"),
                          fix="re-run `kdedge qat` with this kdedge version, or export the checkpoint it started from")
    ranges = dict(cal.ranges(stats, cal.DEFAULT_METHOD), **{k: (-a, a) for k, a in learned.items()})
    # a centred activation (Clip at -floor) reaches down to -floor and no further: its U8S8 range starts there
    u8s8 = dict(cal.ranges(stats, cal.DEFAULT_METHOD, symmetric=False),
                **{k: ((0.0 if stats[k].low >= 0 else max(-a, float(stats[k].low))), a) for k, a in learned.items()})
    drop = round(drop_of(qz.quantize_qdq(path, ranges, excluded=excluded)), 4)
    log("[qat] learned ranges for %d tensors, float: %s; estimated drop %.4f dB on the calibration images"
        % (len(learned), ", ".join(excluded) or "none", drop))
    return Int8Plan(stats, "qat", {"qat": drop}, ranges, excluded, None, drop, u8s8)


def qat_calibration_label(qat: dict) -> str:
    """How a `kdedge qat` checkpoint's ranges came about: the step kept on validation, not just the schedule
    (a run whose starting point stayed best ships percentile-calibrated ranges, and says so)."""
    steps = qat["config"]["steps"]
    history = qat.get("history") or []
    kept = max(history, key=lambda h: h["val_psnr"])["step"] if history else None
    if kept is None:
        return "learned (kdedge qat, %d steps)" % steps
    if kept == 0:
        return "percentile (kdedge qat kept its calibrated start: none of %d steps beat it on validation)" % steps
    return "learned (kdedge qat, step %d of %d kept on validation)" % (kept, steps)

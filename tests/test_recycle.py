"""Dead ReLU channels re-initialised during training (kdedge.distill.recycle, ReDo): exact surgery."""
from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")

from kdedge.distill.recycle import dead_channels, recycle  # noqa: E402
from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model  # noqa: E402


def _kill(net, layer: int, channel: int) -> None:
    """Make ReLU `layer`'s `channel` never fire: zero incoming weights, a negative bias."""
    block = net.body[2 * layer]
    with torch.no_grad():
        convs = [block] if isinstance(block, torch.nn.Conv2d) else [block.conv3x3, block.conv1x1]
        for conv in convs:
            conv.weight[channel] = 0
        convs[0].bias[channel] = -100.0  # below anything the identity branch can pass on


@pytest.mark.parametrize("arch", ["repanchor", "anchor"])
def test_recycling_is_exact_and_revives(arch):
    torch.manual_seed(0)
    net = create_model(arch, scale=2, color="y", width=8, depth=2).eval()
    with torch.no_grad():  # every channel fires at first (a random plain conv stack has dead ones of its own)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.fill_(0.5)
    # channel 2 dead in the head; in the next block its identity branch would pass the (zero) input
    # channel 2 on, so channel 2 of that block dies too once its own weights are zero
    _kill(net, 0, 2)
    _kill(net, 1, 2)
    _kill(net, 2, 5)
    x = [torch.rand(2, 1, 16, 16) for _ in range(3)]
    assert dead_channels(net, x) == {0: [2], 1: [2], 2: [5]}
    ema = create_model(arch, scale=2, color="y", width=8, depth=2)
    ema.load_state_dict(net.state_dict())
    ema_before = [p.detach().clone() for p in ema.parameters()]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(x[0]).mean().backward()
    opt.step()  # moments exist now
    opt.zero_grad()
    before = net(x[0]).detach()
    untouched = net.body[0].conv3x3.weight[0].clone() if arch == "repanchor" else net.body[0].weight[0].clone()

    assert recycle(net, {0: [2], 1: [2], 2: [5]}, torch.Generator().manual_seed(1), opt, ema) == 3

    # the same function right after the surgery, and the channels fire again
    assert torch.allclose(net(x[0]), before, atol=1e-6)
    assert dead_channels(net, x) == {}
    # the EMA copy (taken before the optimizer step) got the written slices, and kept its own values elsewhere
    first = net.body[0].conv3x3 if arch == "repanchor" else net.body[0]
    ema_first = ema.body[0].conv3x3 if arch == "repanchor" else ema.body[0]
    assert torch.equal(ema_first.weight[2], first.weight[2]) and not torch.equal(ema_first.weight[0], first.weight[0])
    for (n, p), (_, e), b in zip(net.named_parameters(), ema.named_parameters(), ema_before):
        assert bool(((e == p) | (e == b)).all()), n
    assert torch.equal(first.weight[0], untouched)
    assert first.bias[2] != -100.0
    # AdamW's moments of the recycled rows start from zero
    state = opt.state[first.weight]
    assert torch.count_nonzero(state["exp_avg"][2]) == 0 and torch.count_nonzero(state["exp_avg"][0]) > 0
    # the gradient reaches the zeroed outgoing weights (then, next step, the incoming ones)
    net(x[0]).square().mean().backward()
    nxt = net.body[2].conv3x3 if arch == "repanchor" else net.body[2]
    assert torch.count_nonzero(nxt.weight.grad[:, 2]) > 0


def test_recycling_refuses_other_students():
    # a centred student's FloorReLU outputs are negative by design: "never positive" means nothing there
    centred = create_model("anchor", scale=2, color="y", width=4, depth=1, floors=[0.1, 0.1])
    with pytest.raises(KdedgeError, match="alternates conv and ReLU"):
        dead_channels(centred, [torch.rand(1, 1, 8, 8)])
    assert dead_channels(create_model("espcn", scale=2, color="y", width=4), [torch.rand(1, 1, 8, 8)]) is not None


def test_trainer_recycles_and_logs(tmp_path):
    from test_train_utils import tiny_config
    from kdedge.distill.trainer import train

    # lr 0.3 kills ReLU channels of a 4-wide student within a few steps
    cfg = tiny_config(tmp_path, student="repanchor", lr=0.3, steps=12, recycle_interval=2, recycle_until=1.0, eval_interval=6)
    result = train(cfg, command="train")
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert result["step"] == 12 and int(rows[-1]["recycled"]) > 0


def test_recycle_config_is_checked(tmp_path):
    from test_train_utils import tiny_config

    with pytest.raises(KdedgeError, match="recycle"):
        tiny_config(tmp_path, recycle_interval=-1)


def test_resume_with_recycling_continues_exactly(tmp_path):
    from test_train_utils import tiny_config
    from kdedge.checkpoint import load_checkpoint
    from kdedge.distill.trainer import train

    opts = dict(student="repanchor", lr=0.3, steps=12, recycle_interval=2, recycle_until=1.0, eval_interval=4)
    train(tiny_config(tmp_path / "a", **opts), command="train")
    train(tiny_config(tmp_path / "b", stop_at=4, **opts), command="train")
    train(tiny_config(tmp_path / "b", resume="last", **opts), command="train")
    a = load_checkpoint(tmp_path / "a" / "run" / "last.safetensors").module.state_dict()
    b = load_checkpoint(tmp_path / "b" / "run" / "last.safetensors").module.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rows = [list(csv.DictReader(open(tmp_path / r / "run" / "metrics.csv")))[-1]["recycled"] for r in ("a", "b")]
    assert rows[0] == rows[1] and int(rows[0]) > 0

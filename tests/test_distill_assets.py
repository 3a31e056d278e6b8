"""The models shipped in kdedge/assets: they load from their own headers and fit the edge budget."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kdedge.checkpoint import load_checkpoint, read_header  # noqa: E402
from kdedge.distill.config import TrainConfig  # noqa: E402
from kdedge.distill.inputs import EMBEDDED_STUDENT, EMBEDDED_TEACHER, load_teacher  # noqa: E402
from kdedge.models.students import complexity  # noqa: E402


def test_embedded_student_fits_the_edge_budget():
    model = load_checkpoint(EMBEDDED_STUDENT)
    assert (model.scale, model.color) == (2, "y")
    assert complexity(model.module)["macs_per_lr_pixel"] <= 12500
    assert "train_state" not in read_header(EMBEDDED_STUDENT)  # deployable weights only
    assert EMBEDDED_STUDENT.stat().st_size < 1_000_000
    x = torch.rand(1, 1, 12, 10)
    with torch.no_grad():
        assert model(x).shape == (1, 1, 24, 20)


def test_embedded_teacher_is_what_distill_uses_by_default():
    teacher = load_teacher(TrainConfig(teacher="embedded", kd_weight=1.0), torch.device("cpu"))
    assert (teacher.scale, teacher.color) == (2, "y")
    assert not any(p.requires_grad for p in teacher.module.parameters())
    assert EMBEDDED_TEACHER.stat().st_size < 5_000_000
    student = load_checkpoint(EMBEDDED_STUDENT)
    assert complexity(teacher.module)["macs_per_lr_pixel"] > 4 * complexity(student.module)["macs_per_lr_pixel"]

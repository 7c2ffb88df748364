"""The trainer observes and saves each member at the point its optimizer is evaluated at:
schedule_free_adamw's average x, not the gradient point y it steps from."""

import torch

from lmech.models.mlp import ModelSpec
from lmech.observables.observer import make_observer
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.teacher_student import TeacherStudentSpec
from lmech.train import build_ensemble, per_member_loss, train_run


def _spec(name: str) -> RunSpec:
    return RunSpec(task=TeacherStudentSpec(input_dim=4, n_train=32, n_test=32), model=ModelSpec(width=8, depth=1),
                   optimizer=OptimizerSpec(name=name, lr=0.05), steps=20, loss="half_sse",
                   observe={"loss": ObserveSpec(every=20)})


def _test_loss_at(spec: RunSpec, params: dict[str, torch.Tensor]) -> float:
    state = build_ensemble([spec])
    with torch.no_grad():
        for name, value in params.items():
            state.params[name].copy_(value.unsqueeze(0))
    return float(per_member_loss(state.outputs(state.x_test), state.y_test, state.loss)[0])


def _run(spec: RunSpec):
    observe, steps = make_observer(spec.observe, spec.steps)
    result = train_run(spec, observe, steps)
    recorded = [v for s, n, v in result.rows if n == "loss/test" and s == 20][0]
    return result, recorded


def test_schedule_free_is_recorded_and_saved_at_its_average():
    spec = _spec("schedule_free_adamw")
    result, recorded = _run(spec)
    assert abs(_test_loss_at(spec, result.final_params) - recorded) <= 1e-6 * max(1.0, abs(recorded))
    # negative control: the gradient point y (rebuilt by replaying the same steps) has another loss
    import lmech.train.loop as loop

    original = loop.evaluation_params
    loop.evaluation_params = lambda name, params, state: params  # evaluate at y instead
    try:
        at_y, _ = _run(spec)
    finally:
        loop.evaluation_params = original
    assert abs(_test_loss_at(spec, at_y.final_params) - recorded) > 1e-4 * max(1.0, abs(recorded))


def test_other_optimizers_are_saved_at_their_parameters():
    spec = _spec("adamw")
    result, recorded = _run(spec)
    assert abs(_test_loss_at(spec, result.final_params) - recorded) <= 1e-6 * max(1.0, abs(recorded))

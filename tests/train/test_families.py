"""Every model family through lmech's trainer: an ensemble of members differing in seed and learning
rate equals each member trained alone (the same trainer, K = 1) and equals an ordinary nn.Module
trained with torch.optim; bad user factories and shapes are one line."""

import pytest
import torch

from lmech.errors import InputError
from lmech.instruments.losses import named_loss
from lmech.models import build_model, lr_multipliers
from lmech.spec import RunSpec
from lmech.tasks import make_task
from lmech.train import build_ensemble, train_ensemble

TOKENS = {"name": "markov_language", "vocab_size": 6, "seq_len": 8, "n_train": 48, "n_test": 16}
DIGITS = {"name": "digits"}
FAMILIES = {
    "transformer": (TOKENS, {"kind": "transformer", "width": 16, "heads": 2, "depth": 2, "context": 8}, "adamw"),
    "cnn": (DIGITS, {"kind": "cnn", "dim": 2, "width": 4}, "sgd"),
    "resmlp": (DIGITS, {"kind": "resmlp", "width": 16, "depth": 2, "depth_scaling": "depth_mup"}, "sgd"),
    "linear_recurrence": (TOKENS, {"kind": "linear_recurrence", "width": 8, "depth": 1}, "adam"),
}
STEPS = 20


def _specs(family: str, seeds=(0, 1, 2, 3), lrs=(0.01, 0.02, 0.03, 0.04)):
    task, model, optimizer = FAMILIES[family]
    momentum = 0.9 if optimizer == "sgd" else 0.0
    return [RunSpec.model_validate({"task": task, "model": model, "steps": STEPS, "seed": s, "observe": {},
                                    "optimizer": {"name": optimizer, "lr": lr, "momentum": momentum,
                                                  "weight_decay": 0.01, "batch_size": 16}})
            for s, lr in zip(seeds, lrs)]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ensemble_equals_members_alone_and_torch_optim(family):
    specs = _specs(family)
    together = train_ensemble(specs)
    for k in (0, 3):
        alone = train_ensemble([specs[k]])[0]
        for name, value in together[k].final_params.items():
            # float32: vmap over members vs K = 1 may reorder reductions in the last bits
            assert torch.allclose(value, alone.final_params[name], rtol=1e-5, atol=1e-6), (family, name)
    # member 1 as an ordinary nn.Module with torch.optim on the same minibatches (full batch here:
    # the trainer's minibatch order is its own; a full-batch twin isolates the update rule)
    spec = specs[1].model_copy(update={"optimizer": specs[1].optimizer.model_copy(update={"batch_size": None})})
    ours = train_ensemble([spec])[0].final_params
    task = make_task(spec.task, 0)
    module = build_model(spec.model, tuple(task.x_train.shape[1:]), task.output_dim, task.vocab_size, spec.seed)
    mult = lr_multipliers(spec.model, module, "sgd" if spec.optimizer.name == "sgd" else "adam")
    groups = [{"params": [p], "lr": spec.optimizer.lr * mult[n]} for n, p in module.named_parameters()]
    opt = {"sgd": lambda: torch.optim.SGD(groups, momentum=0.9, weight_decay=0.01),
           "adam": lambda: torch.optim.Adam(groups, weight_decay=0.01),
           "adamw": lambda: torch.optim.AdamW(groups, weight_decay=0.01)}[spec.optimizer.name]()
    loss = named_loss(task.loss)
    for _ in range(STEPS):
        opt.zero_grad()
        loss(module(task.x_train), task.y_train).backward()
        opt.step()
    # compare the functions, not parameters whose gradient is ~0 by symmetry (e.g. attention key
    # biases, where Adam turns rounding noise into full-size steps)
    trained = build_model(spec.model, tuple(task.x_train.shape[1:]), task.output_dim, task.vocab_size, spec.seed)
    with torch.no_grad():
        for name, p in trained.named_parameters():
            p.copy_(ours[name])
        ours_out, torch_out = trained.eval()(task.x_test), module.eval()(task.x_test)
    error = torch.linalg.norm(ours_out - torch_out) / torch.linalg.norm(torch_out)
    assert error < 1e-4, (family, float(error))  # float32 over 20 steps
    start = build_model(spec.model, tuple(task.x_train.shape[1:]), task.output_dim, task.vocab_size, spec.seed)
    moved = torch.linalg.norm(start.eval()(task.x_test).detach() - torch_out) / torch.linalg.norm(torch_out)
    assert moved > 100 * error, (family, float(moved))  # negative control: training moved the function


def test_factory_models_train_and_bad_factories_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch\n\n"
        "def mlp(width=8):\n"
        "    return torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))\n\n"
        "def wrong_outputs():\n"
        "    return torch.nn.Linear(64, 3)\n\n"
        "def broken():\n"
        "    raise RuntimeError('no such layer')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"task": DIGITS, "steps": 5, "observe": {"loss": {"every": 5}},
            "optimizer": {"name": "sgd", "lr": 0.05, "batch_size": 32}}
    runs = [RunSpec.model_validate({**spec, "seed": s, "model": {"kind": "factory", "factory": "my_models:mlp",
                                                              "kwargs": {"width": 12}}}) for s in (0, 1)]
    results = train_ensemble(runs)
    assert all(r.diverged_step is None for r in results)
    assert not torch.equal(results[0].final_params["0.weight"], results[1].final_params["0.weight"])  # own seeds
    for factory, message in [("my_models:wrong_outputs", "do not fit the task's targets"),
                             ("my_models:broken", "raised RuntimeError: no such layer"),
                             ("my_models:nope", "has no attribute")]:
        bad = RunSpec.model_validate({**spec, "model": {"kind": "factory", "factory": factory}})
        with pytest.raises(InputError, match=message):
            build_ensemble([bad])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_members_train_as_alone_in_float64(family, optimizer):
    """lmech's own families, float64, K = 4 members differing in seed and lr, 50 steps of the
    trainer's step (stack_members, vmapped losses_and_grads, optimizer_step with the family's
    lr multipliers) vs each member alone as an nn.Module with torch.optim: relative <= 1e-8."""
    from lmech.train import MemberHyper, init_optimizer_state, optimizer_step, stack_members
    from lmech.train.functional import losses_and_grads

    task_spec, model, _ = FAMILIES[family]
    spec = RunSpec.model_validate({"task": task_spec, "model": model})
    task = make_task(spec.task, 0)
    x = task.x_train[:16].double() if task.x_train.is_floating_point() else task.x_train[:16]
    y = task.y_train[:16]
    shape = tuple(task.x_train.shape[1:])
    members = [build_model(spec.model, shape, task.output_dim, task.vocab_size, seed).double() for seed in range(4)]
    family_name = "sgd" if optimizer == "sgd" else "adam"
    mult = lr_multipliers(spec.model, members[0], family_name)
    lrs, momentum = [0.02, 0.01, 0.03, 0.005], 0.9 if optimizer == "sgd" else 0.0
    stacked = stack_members(members)
    hyper = MemberHyper(torch.tensor(lrs, dtype=torch.float64), torch.full((4,), 0.01, dtype=torch.float64),
                        torch.full((4,), momentum, dtype=torch.float64))
    state = init_optimizer_state(optimizer, stacked.params)
    for step in range(1, 51):
        _, grads = losses_and_grads(stacked, x, y, task.loss)
        optimizer_step(optimizer, stacked.params, grads, state, hyper, 1.0, mult, step)
    for k, member in enumerate(members):
        groups = [{"params": [p], "lr": lrs[k] * mult[n]} for n, p in member.named_parameters()]
        opt = (torch.optim.SGD(groups, momentum=momentum, weight_decay=0.01) if optimizer == "sgd"
               else torch.optim.AdamW(groups, weight_decay=0.01))
        for _ in range(50):
            opt.zero_grad()
            named_loss(task.loss)(member(x), y).backward()
            opt.step()
        ours = torch.cat([stacked.params[n][k].detach().reshape(-1) for n, _ in member.named_parameters()])
        theirs = torch.cat([p.detach().reshape(-1) for p in member.parameters()])
        worst = float((ours - theirs).norm() / theirs.norm())  # over all parameters: some start at 0
        assert worst <= 1e-8, (family, optimizer, k, worst)  # float64, same ops in another order

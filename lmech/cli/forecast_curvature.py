"""`lmech forecast max-lr` and `lmech forecast batch`: forecasts from curvature and gradient noise.

One job: parse the flags (as `lmech measure`: --model, --data or --task, --weights, --loss, plus the
optimizer's), call `lmech.forecast.max_lr` / `lmech.forecast.batch`, print the forecast (one JSON
object with --json) and, with --check, the held-out runs' verdict (exit 1 when it fails). Commands
from `lmech.cli.commands` are imported inside the functions (commands imports this module).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from lmech.errors import InputError

ModelOption = Annotated[str, typer.Option("--model", help="factory returning an nn.Module: pkg.module:function")]
TaskOption = Annotated[Optional[str], typer.Option("--task", help="a built-in task's training set (e.g. digits)")]
DataOption = Annotated[Optional[str], typer.Option("--data", help="function returning (inputs, targets): "
                                                   "pkg.module:function")]
WeightsOption = Annotated[Optional[Path], typer.Option("--weights", help="state dict saved with torch.save")]
LossOption = Annotated[Optional[str], typer.Option("--loss", help="mse | half_sse | cross_entropy (default: from "
                                                   "the targets)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
CheckFlag = Annotated[bool, typer.Option("--check", help="also run the held-out experiment on this model and "
                                         "print the forecast's error (exit 1 if it misses)")]
ReportsOption = Annotated[Path, typer.Option("--reports", help="atlas reports folder, for the track record")]
SeedOption = Annotated[int, typer.Option("--seed", help="seed of the Lanczos start and the example draws")]


def _setup(model: str, task: str | None, data: str | None, weights: Path | None, loss: str | None):
    from lmech.cli.commands import _user_model_and_data
    from lmech.instruments.losses import named_loss

    net, batch, loss_name = _user_model_and_data(model, task, data, weights, loss)
    return net, batch, loss_name, named_loss(loss_name)


def _parse_batches(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--batches expects comma-separated integers, got '{text[:80]}'") from None
    if not values:
        raise InputError("--batches is empty")
    return values


def _print_forecast(result, stdout) -> None:
    from rich.markup import escape

    low, high = result.interval
    stdout.print(f"{escape(result.name)}: {result.forecast:.4g} {escape(result.unit)} "
                 f"[{low:.4g}, {high:.4g}]")
    stdout.print(f"basis: {escape(result.basis)}")
    record = result.track_record
    if record is None:
        stdout.print(f"track record: none yet (run `lmech atlas --only {result.phenomenon}`)")
    else:
        stdout.print(f"track record: {result.phenomenon} {'PASS' if record['passed'] else 'FAIL'}, error "
                     f"{record['error']:.3g} vs tolerance {record['tolerance']:.3g} ({record['mode']}, {record['date']})")


def max_lr(
    model: ModelOption,
    task: TaskOption = None,
    data: DataOption = None,
    weights: WeightsOption = None,
    loss: LossOption = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd (full-batch GD) | momentum | adam")] = "sgd",
    momentum: Annotated[float, typer.Option("--momentum", help="heavy-ball beta (PyTorch convention)")] = 0.9,
    beta1: Annotated[float, typer.Option("--beta1", help="Adam beta1")] = 0.9,
    beta2: Annotated[float, typer.Option("--beta2", help="Adam beta2")] = 0.999,
    eps: Annotated[float, typer.Option("--eps", help="Adam eps")] = 1e-8,
    check: CheckFlag = False,
    check_steps: Annotated[int, typer.Option("--check-steps", help="full-batch steps of each bisection run")] = 200,
    seed: SeedOption = 0,
    reports: ReportsOption = Path("lmech-report"),
    as_json: JsonFlag = False,
):
    """The largest stable learning rate from the curvature at initialization (2/λ, (2+2β)/λ, Adam's 38/λ_P)."""
    from lmech.cli.commands import _emit_json, _measured, _progress, _spinner, _user_errors, stdout
    from lmech.forecast._check import OptimizerChoice
    from lmech.forecast.max_lr import check_max_lr, forecast_max_lr

    with _user_errors():
        choice = OptimizerChoice(optimizer, momentum=momentum, betas=(beta1, beta2), eps=eps)
        if check_steps < 1:
            raise InputError(f"--check-steps must be >= 1, got {check_steps}")
        net, batch, loss_name, loss_fn = _setup(model, task, data, weights, loss)
        with _spinner("curvature at initialization", enabled=not as_json):
            result = _measured(lambda: forecast_max_lr(net, loss_fn, batch, loss_name, choice, seed=seed,
                                                       reports=str(reports)))
        outcome = None
        if check:
            with _progress("bisecting the divergence lr", enabled=not as_json) as progress:
                outcome = _measured(lambda: check_max_lr(net, loss_fn, batch, result, choice, steps=check_steps,
                                                         progress=progress))
            result = replace(result, check=outcome)
    if as_json:
        _emit_json(result.to_json())
    else:
        _print_forecast(result, stdout)
        if outcome is not None:
            stdout.print(f"check: divergence lr {outcome['divergence_lr']:.4g} (stable {outcome['stable']:.4g}, "
                         f"diverged {outcome['unstable']:.4g}, {outcome['runs']} runs of {outcome['steps']} steps) = "
                         f"{outcome['ratio']:.3g} x forecast: {'inside' if outcome['inside'] else 'OUTSIDE'} the window")
    if outcome is not None and not outcome["passed"]:
        raise typer.Exit(1)


def batch(
    model: ModelOption,
    task: TaskOption = None,
    data: DataOption = None,
    weights: WeightsOption = None,
    loss: LossOption = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd (the law is derived for plain SGD)")] = "sgd",
    batches: Annotated[str, typer.Option("--batches", help="increasing batch sizes: the first --fit are swept and "
                                         "fitted, every one is forecast")] = "2,4,8,16,32,64",
    fit: Annotated[int, typer.Option("--fit", help="how many of the smallest batches to fit eps_max on")] = 3,
    draws: Annotated[int, typer.Option("--draws", help="minibatch draws per learning rate")] = 32,
    steps: Annotated[int, typer.Option("--steps", help="SGD steps of each sweep run (the law is per step: 1)")] = 1,
    examples: Annotated[int, typer.Option("--examples", help="per-example gradients for B_noise (0: all)")] = 256,
    check: CheckFlag = False,
    seed: SeedOption = 0,
    reports: ReportsOption = Path("lmech-report"),
    as_json: JsonFlag = False,
):
    """Critical batch B_noise = tr(HΣ)/GᵀHG and the best SGD lr per batch, ε_max/(1 + B_noise/B), fitted on small batches."""
    from lmech.cli.commands import _emit_json, _measured, _progress, _user_errors, stdout
    from lmech.forecast.batch import check_batch_forecast, forecast_batch_for_model

    with _user_errors():
        if optimizer != "sgd":
            raise InputError(f"forecast batch supports --optimizer sgd (McCandlish's law is derived for SGD), "
                             f"got '{optimizer}'")
        for name, value in (("--draws", draws), ("--steps", steps), ("--fit", fit)):
            if value < 1:
                raise InputError(f"{name} must be >= 1, got {value}")
        if examples < 0:
            raise InputError(f"--examples must be >= 0 (0: all), got {examples}")
        sizes = _parse_batches(batches)
        net, data_pair, loss_name, loss_fn = _setup(model, task, data, weights, loss)
        from lmech.forecast.batch import check_batches
        from lmech.instruments._call import num_examples

        check_batches(sizes, fit, num_examples(data_pair[0]))
        if check and sizes[-1] < 32 * sizes[0]:
            raise InputError(f"--check needs --batches spanning at least 32x, got {sizes[0]}..{sizes[-1]}")
        with _progress("noise scale and small-batch sweeps", enabled=not as_json) as progress:
            result = _measured(lambda: forecast_batch_for_model(
                net, loss_fn, data_pair, sizes, fit_count=fit, draws=draws, steps=steps,
                examples=examples or None, seed=seed, reports=str(reports), progress=progress))
        outcome = None
        if check:
            with _progress("held-out batches", enabled=not as_json) as progress:
                outcome = _measured(lambda: check_batch_forecast(net, loss_fn, data_pair, result, draws=draws,
                                                                 steps=steps, progress=progress))
            result = replace(result, check=outcome)
    if as_json:
        _emit_json(result.to_json())
    else:
        _print_forecast(result, stdout)
        d = result.details
        stdout.print(f"B_simple = {d['b_simple']:.4g}; eps_max = {d['eps_max']:.4g} "
                     f"[{d['eps_max_interval'][0]:.4g}, {d['eps_max_interval'][1]:.4g}] (theory |G|²/GᵀHG "
                     f"{d['eps_max_theory']:.4g}); loss {loss_name}")
        for b, (lr, lo, hi) in d["lr_at_batch"].items():
            stdout.print(f"  B = {b:>5}: best lr {lr:.4g} [{lo:.4g}, {hi:.4g}]   (linear scaling {d['linear_scaling_lr'][b]:.4g})")
        if outcome is not None:
            for row in outcome["rows"]:
                stdout.print(f"check B = {row['batch']:>5}: measured best lr {row['measured_best_lr']:.4g} vs forecast "
                             f"{row['forecast_lr']:.4g} (factor {row['factor']:.3g}; linear scaling off by "
                             f"{row['linear_factor']:.3g}x){' AT GRID EDGE' if row['at_grid_edge'] else ''}")
            stdout.print(f"check: worst factor {outcome['error']:.3g} vs tolerance {outcome['tolerance']:g}: "
                         f"{'PASS' if outcome['passed'] else 'FAIL'}")
    if outcome is not None and not outcome["passed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("max-lr")(max_lr)
    app.command("batch")(batch)

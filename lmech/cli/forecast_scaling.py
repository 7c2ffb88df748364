"""`lmech forecast lr-transfer | compute | curve`: forecasts that need a size axis or a schedule, on your model.

One job: read the flags, build the runner (your factory on `--task`/`--data`, or a spec file's model:
any lmech family or `model.kind: factory`), call `lmech.forecast.{lr_transfer,compute,curve}.run_*`,
print the forecast (or one JSON object with --json) and, with --check, the held-out error (exit 1 when
the check fails). Bad input is one line and exit 2. The forecasts train from initialization at several
widths, so there is no --weights here (a state dict fits one width only).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from lmech.errors import InputError

__all__ = ["register"]

ModelOpt = Annotated[Optional[str], typer.Option("--model", help="factory taking a width keyword: pkg.module:function")]
SpecOpt = Annotated[Optional[Path], typer.Option("--spec", help="a run spec (YAML/JSON) whose model is scaled: an lmech "
                                                 "family (model.width) or model.kind: factory (kwargs.width)")]
TaskOpt = Annotated[Optional[str], typer.Option("--task", help="a built-in task's training set (e.g. digits)")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="function returning (inputs, targets): pkg.module:function")]
LossOpt = Annotated[Optional[str], typer.Option("--loss", help="mse | half_sse | cross_entropy (default: from the targets)")]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="sgd | momentum | adam")]
MomentumOpt = Annotated[float, typer.Option("--momentum", help="momentum of --optimizer momentum")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="minibatch size (default: full batch)")]
SeedsOpt = Annotated[int, typer.Option("--seeds", help="ensemble members per setting")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
CheckOpt = Annotated[bool, typer.Option("--check", help="also run the held-out experiment and print the forecast's error")]
ReportsOpt = Annotated[Path, typer.Option("--reports", help="atlas report folder for the track record")]


def _widths(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{flag} expects comma-separated integers, got '{text[:80]}'") from None
    if not values or any(v <= 0 for v in values):
        raise InputError(f"{flag} must be positive integers, got '{text[:80]}'")
    return values


def _numbers(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{flag} expects comma-separated numbers, got '{text[:80]}'") from None
    if not values or any(not v > 0 for v in values):
        raise InputError(f"{flag} must be positive numbers, got '{text[:80]}'")
    return values


def _optimizer(name: str, momentum: float, batch_size: int | None, lr: float = 0.1):
    from lmech.spec import OptimizerSpec

    if name not in ("sgd", "momentum", "adam"):
        raise InputError(f"--optimizer must be sgd, momentum or adam, got '{name}'")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {batch_size}")
    if not 0 <= momentum < 1:
        raise InputError(f"--momentum must be in [0, 1), got {momentum}")
    return OptimizerSpec(name="adam" if name == "adam" else "sgd", lr=lr, batch_size=batch_size,
                         momentum=momentum if name == "momentum" else 0.0)


def _check_width_keyword(factory_path: str) -> None:
    from lmech.cli.user_code import load_factory

    factory = load_factory(factory_path)
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if "width" not in parameters and not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        raise InputError(f"model factory '{factory_path}' takes no 'width' keyword; this forecast scales the width")


def _runner(model, spec, task, data, loss, optimizer, momentum, batch_size, probe_width: int, metric: str = "loss/train"):
    """A SpecRunner for --spec, else a DataRunner on your factory and data (checked to run together)."""
    from lmech.forecast._runs import DataRunner, SpecRunner

    if spec is not None:
        if model is not None or task is not None or data is not None:
            raise InputError("give --spec alone, or --model with --task/--data")
        from lmech.cli.spec_input import read_spec_file
        from lmech.spec import RunSpec

        tree = read_spec_file(spec)
        tree.pop("sweep", None)
        tree.pop("name", None)
        base = RunSpec.model_validate(tree)
        if getattr(base.model, "kind", None) == "factory":
            _check_width_keyword(base.model.factory)
        runner = SpecRunner(base, metric)
        runner.model_at(probe_width)  # a model that cannot take the width fails here, in one line
        return runner
    if model is None:
        raise InputError("give --model pkg.module:factory (with --task or --data) or --spec FILE")
    from lmech.cli.user_code import check_runs, choose_loss, load_data, task_data

    if (task is None) == (data is None):
        raise InputError("give exactly one of --task NAME or --data pkg.module:function")
    _check_width_keyword(model)
    inputs, targets = task_data(task) if task is not None else load_data(data)
    loss_name = choose_loss(loss, targets)
    runner = DataRunner(model, inputs, targets, loss_name, _optimizer(optimizer, momentum, batch_size))
    check_runs(runner.model_at(probe_width), inputs, targets, loss_name)
    return runner


def _emit(forecast, as_json: bool, lines) -> None:
    from lmech.cli.commands import _emit_json, stdout

    if as_json:
        _emit_json(forecast.to_json())
    else:
        stdout.print(f"{forecast.name}: {forecast.forecast:.4g} {forecast.unit} "
                     f"[{forecast.interval[0]:.4g}, {forecast.interval[1]:.4g}]")
        stdout.print(f"basis: {forecast.basis}", markup=False)
        for line in lines(forecast):
            stdout.print(line, markup=False)
        record = forecast.track_record
        stdout.print("track record: " + (f"{record['phenomenon']} error {record['error']:.3g} vs tolerance "
                                         f"{record['tolerance']:.3g} ({'passed' if record['passed'] else 'FAILED'}, "
                                         f"{record['mode']}, {record['date']})" if record else
                                         f"none yet (run `lmech atlas --only {forecast.phenomenon}`)"), markup=False)
    if forecast.check is not None and not forecast.check.get("passed", False):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add lr-transfer, compute and curve to `app`."""

    @app.command("lr-transfer")
    def lr_transfer(
        target_width: Annotated[int, typer.Option("--target-width", help="the width to forecast lr* at")],
        model: ModelOpt = None, spec: SpecOpt = None, task: TaskOpt = None, data: DataOpt = None,
        loss: LossOpt = None, optimizer: OptimizerOpt = "adam", momentum: MomentumOpt = 0.9,
        batch_size: BatchOpt = None,
        widths: Annotated[str, typer.Option("--widths", help="proxy widths, comma-separated (>= 3 advised)")] = "8,16,32",
        lr_min: Annotated[float, typer.Option("--lr-min", help="smallest lr of the sweep")] = 2.0**-12,
        lr_max: Annotated[float, typer.Option("--lr-max", help="largest lr of the sweep")] = 2.0**-2,
        lr_step: Annotated[float, typer.Option("--lr-step", help="grid step in octaves (0.5: half-octave)")] = 0.5,
        steps: Annotated[int, typer.Option("--steps", help="training steps per run")] = 100,
        seeds: SeedsOpt = 2,
        parameterization: Annotated[str, typer.Option("--parameterization", help="sp: fit lr* ∝ width^b; mup: flat")] = "sp",
        as_json: JsonOpt = False, check: CheckOpt = False, reports: ReportsOpt = Path("lmech-report"),
    ):
        """Optimal learning rate at --target-width from lr sweeps at small --widths (power law under SP, flat under muP)."""
        from lmech.cli.commands import _progress, _user_errors
        from lmech.forecast.lr_transfer import PHENOMENON_NAME, SCORED_OPTIMIZERS, half_octave_grid, run_lr_transfer
        from lmech.forecast.result import track_record

        with _user_errors():
            proxies = _widths(widths, "--widths")
            if target_width <= 0:
                raise InputError(f"--target-width must be positive, got {target_width}")
            if parameterization not in ("sp", "mup"):
                raise InputError(f"--parameterization must be sp or mup, got '{parameterization}'")
            grid = half_octave_grid(lr_min, lr_max, lr_step)
            if len(grid) < 3:
                raise InputError(f"the lr sweep has {len(grid)} points; need at least 3 (widen --lr-min/--lr-max)")
            runner = _runner(model, spec, task, data, loss, optimizer, momentum, batch_size, proxies[0])
            with _progress("lr sweeps", enabled=not as_json) as progress:
                forecast = run_lr_transfer(runner, proxies, target_width, grid, seeds, steps, parameterization, check,
                                           progress, track_record(PHENOMENON_NAME, reports))

        def lines(f):
            out = [f"exponent b = {f.details['exponent']:.3g} {f.details['exponent_interval']}"
                   if parameterization == "sp" else "muP: flat by theory (exponent 0)"]
            scored = SCORED_OPTIMIZERS[parameterization]
            if optimizer != scored:
                out.append(f"note: the track record scores {parameterization.upper()} with {scored}, not {optimizer}: "
                           f"on the atlas task (forecast-lr-transfer) the crossed pairings fail")
            if f.check:
                c = f.check
                out.append(f"check at width {target_width}: measured lr* {c['measured']:.4g}, error "
                           f"{c['error_octaves']:.2f} octaves, loss at the forecast {c['excess_loss']:+.2%} vs best "
                           f"({'passed' if c['passed'] else 'FAILED'}: {c['rule']})")
            return out

        _emit(forecast, as_json, lines)

    @app.command("compute")
    def compute(
        budgets: Annotated[str, typer.Option("--budgets", help="FLOP budgets C1..C4 of the IsoFLOP ladders, comma-separated")],
        target_budget: Annotated[float, typer.Option("--target-budget", help="the budget C5 to forecast at (>= 4 C4 advised)")],
        model: ModelOpt = None, spec: SpecOpt = None, task: TaskOpt = None, data: DataOpt = None,
        loss: LossOpt = None, optimizer: OptimizerOpt = "sgd", momentum: MomentumOpt = 0.9,
        batch_size: BatchOpt = 32,
        widths: Annotated[str, typer.Option("--widths", help="ladder widths, comma-separated")] = "2,4,8,16,32,64",
        lr: Annotated[float, typer.Option("--lr", help="constant learning rate of every rung")] = 0.02,
        max_steps: Annotated[int, typer.Option("--max-steps", help="leave out rungs longer than this")] = 4096,
        seeds: SeedsOpt = 4,
        as_json: JsonOpt = False, check: CheckOpt = False, reports: ReportsOpt = Path("lmech-report"),
    ):
        """Compute-optimal model size (and loss) at --target-budget from IsoFLOP ladders (Hoffmann et al. 2022, Approach 2)."""
        from lmech.cli.commands import _progress, _user_errors
        from lmech.forecast.compute import PHENOMENON_NAME, run_compute
        from lmech.forecast.result import track_record

        with _user_errors():
            values = _numbers(budgets, "--budgets")
            if not target_budget > 0:
                raise InputError(f"--target-budget must be positive, got {target_budget}")
            ladder = _widths(widths, "--widths")
            runner = _runner(model, spec, task, data, loss, optimizer, momentum, batch_size, ladder[0], "loss/test")
            with _progress("IsoFLOP ladders", enabled=not as_json) as progress:
                forecast = run_compute(runner, ladder, values, target_budget, lr, seeds, check, progress,
                                       track_record(PHENOMENON_NAME, reports), max_steps)

        def lines(f):
            d = f.details
            out = [f"loss at the optimum: {d['loss']:.4g} [{d['loss_interval'][0]:.4g}, {d['loss_interval'][1]:.4g}]; "
                   f"examples D = C/(6N) = {d['examples']:.4g}"]
            if f.check:
                c = f.check
                out.append(f"check at C = {target_budget:.3g}: measured N_opt {c['measured']:.4g} (x{c['factor_error']:.2f} "
                           f"off, {'inside' if c['inside_interval'] else 'outside'} the interval), loss at the forecast "
                           f"size {c['excess_loss']:+.2%} vs the minimum ({'passed' if c['passed'] else 'FAILED'})")
            return out

        _emit(forecast, as_json, lines)

    @app.command("curve")
    def curve(
        lr: Annotated[float, typer.Option("--lr", help="peak learning rate of every schedule")],
        steps: Annotated[int, typer.Option("--steps", help="length of the constant and cosine fitting runs")],
        model: ModelOpt = None, spec: SpecOpt = None, task: TaskOpt = None, data: DataOpt = None,
        loss: LossOpt = None, optimizer: OptimizerOpt = "sgd", momentum: MomentumOpt = 0.9,
        batch_size: BatchOpt = 8,
        width: Annotated[int, typer.Option("--width", help="the model's width")] = 32,
        schedule: Annotated[str, typer.Option("--schedule", help="schedule to forecast: wsd | cosine | warmup_cosine ...")] = "wsd",
        target_steps: Annotated[Optional[int], typer.Option("--target-steps", help="its length (default --steps)")] = None,
        seeds: SeedsOpt = 8,
        as_json: JsonOpt = False, check: CheckOpt = False, reports: ReportsOpt = Path("lmech-report"),
    ):
        """Loss curve of --schedule from a constant and a cosine run (Tissue et al. 2024 schedule-aware law)."""
        from lmech.cli.commands import _progress, _user_errors
        from lmech.forecast.curve import PHENOMENON_NAME, run_curve
        from lmech.forecast.result import track_record

        with _user_errors():
            if width <= 0:
                raise InputError(f"--width must be positive, got {width}")
            runner = _runner(model, spec, task, data, loss, optimizer, momentum, batch_size, width)
            with _progress("constant, cosine" + (f", {schedule}" if check else "") + " runs",
                           enabled=not as_json) as progress:
                forecast = run_curve(runner, width, lr, steps, schedule, target_steps or steps, seeds, check=check,
                                     progress=progress, track_record=track_record(PHENOMENON_NAME, reports))

        def lines(f):
            law = f.details["law"]
            out = [f"final loss of {f.details['schedule']}: L0 {law['L0']:.4g}, A {law['A']:.4g}, alpha "
                   f"{law['alpha']:.3g}, C {law['C']:.4g}, lambda {law['lambda']}"]
            if f.check:
                c = f.check
                out.append(f"check: measured final loss {c['measured']:.4g}; max relative error over the second half "
                           f"{c['max_relative_error']:.2%} (schedule-blind power law {c['blind_max_relative_error']:.2%}) "
                           f"({'passed' if c['passed'] else 'FAILED'})")
            return out

        _emit(forecast, as_json, lines)

"""`lmech forecast ...`: the command group. Each forecast's command is registered from its own module.

forecast_curvature.py: max-lr, batch. forecast_scaling.py: lr-transfer, compute, curve.
"""

import typer

from lmech.cli.forecast_curvature import register as _register_curvature
from lmech.cli.forecast_scaling import register as _register_scaling

__all__ = ["forecast_app"]

forecast_app = typer.Typer(no_args_is_help=True, help="Forecasts for your own model: learning rate, "
                           "transfer, batch size, compute split, loss curve; each with its atlas track record.")
_register_curvature(forecast_app)
_register_scaling(forecast_app)

"""Forecasts for the user's own model, each scored by an atlas phenomenon on held-out runs.

Layer: above engine (forecasts train short held-out runs for --check), below phenomena (the
forecast-* phenomena call these functions). See `result.Forecast` for the record.
"""

from lmech.forecast.result import Forecast, track_record

__all__ = ["Forecast", "track_record"]
__all__ += ["forecast_max_lr", "check_max_lr", "forecast_batch_for_model", "check_batch_forecast", "hessian_noise_scale"]  # noqa: E501
from lmech.forecast.max_lr import check_max_lr, forecast_max_lr  # noqa: E402
from lmech.forecast.batch import check_batch_forecast, forecast_batch_for_model, hessian_noise_scale  # noqa: E402

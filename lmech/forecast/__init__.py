"""Forecasts for the user's own model, each scored by an atlas phenomenon on held-out runs.

Layer: above engine (forecasts train short held-out runs for --check), below phenomena (the
forecast-* phenomena call these functions). See `result.Forecast` for the record.
"""

from lmech.forecast.result import Forecast, track_record

__all__ = ["Forecast", "track_record"]

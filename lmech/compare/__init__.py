"""Fair comparison of optimizers: the same lr grid and seeds, best lr on validation, bootstrap intervals.

Layer: above engine (it trains ensembles through lmech.engine), below phenomena and cli.
"""

from lmech.compare.optimizers import (OptimizerComparison, OptimizerResult, analyze, compare_optimizers,
                                      comparison_runs, heldout_losses, log_grid)
from lmech.compare.statistics import Interval, difference_interval, mean_interval

__all__ = ["compare_optimizers", "comparison_runs", "analyze", "heldout_losses", "log_grid",
           "OptimizerComparison", "OptimizerResult", "Interval", "mean_interval", "difference_interval"]

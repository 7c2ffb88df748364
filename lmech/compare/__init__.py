"""Fair comparison of optimizers: the same lr grid and seeds, best lr on validation, bootstrap intervals.

Layer: above engine (it trains ensembles through lmech.engine), below phenomena and cli.
"""

__all__: list[str] = []

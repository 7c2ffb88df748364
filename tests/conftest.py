"""Shared test set-up: one torch thread and one BLAS thread per test process.

The machine is shared and tests run two at a time (pytest -n 2): multithreaded
small ops collapse under contention.
"""

import torch
from threadpoolctl import threadpool_limits

torch.set_num_threads(1)
threadpool_limits(1)

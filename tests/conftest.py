"""Shared test set-up: one torch thread (the machine is shared; two threads collapse under load)."""

import torch

torch.set_num_threads(1)

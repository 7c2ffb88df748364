"""Deterministic child seeds: a hash of (parent seed, purpose), never the global RNG.

A new measurement that needs randomness asks for its own purpose string, so it
never shifts the draws of existing ones (STYLE.md section 6).
"""

import hashlib

import torch

__all__ = ["child_seed", "generator"]


def child_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed derived from `seed` and a purpose string (stable across runs and machines)."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU torch.Generator seeded with `child_seed(seed, purpose)`."""
    return torch.Generator().manual_seed(child_seed(seed, purpose))

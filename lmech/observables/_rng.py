"""Seeded generators for the instruments: a hash of (seed, purpose), never the global RNG.

One job: turn an instrument's `seed=` keyword into independent torch.Generators per
purpose (start vector, probes, batches), so adding a draw never shifts another.
Same scheme as `lmech.seeding` (blake2b of "seed:purpose"), kept private here so
the observables layer has no import-order dependency on it.
"""

import hashlib

import torch

__all__ = ["generator"]


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU torch.Generator seeded with a 63-bit hash of (seed, purpose)."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))

"""lmech: a laboratory for learning mechanics.

Controlled experiments on small networks, measured with tested instruments and
compared with closed-form theory. See README.md for a tour.

`lmech.measure` and `lmech.Recorder` are imported on first use, so `import lmech`
stays cheap (no torch import).
"""

__version__ = "0.1.0"
__all__ = ["__version__", "measure", "Recorder"]


def __getattr__(name: str):
    if name == "measure":
        from lmech.observables.measure import measure

        return measure
    if name == "Recorder":
        from lmech.engine.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'lmech' has no attribute {name!r}")

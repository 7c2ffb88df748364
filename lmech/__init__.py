"""lmech: a laboratory for learning mechanics.

Controlled experiments on small networks, measured with tested instruments and
compared with closed-form theory. See README.md for a tour.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

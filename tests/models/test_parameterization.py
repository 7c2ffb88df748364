import math

import pytest

from lmech.models import resolve_layers


def test_mup_equals_sp_at_base_width():
    for family in ("sgd", "adam"):
        sp = resolve_layers("sp", [10, 64, 64, 3], "relu", family, base_width=64)
        mup = resolve_layers("mup", [10, 64, 64, 3], "relu", family, base_width=64)
        assert sp == mup


@pytest.mark.parametrize("m", [2, 8])
def test_mup_table(m):
    """Yang et al. 2022 Table 3 (readout multiplier 1/m): SGD lr x m for vector-like, Adam lr / m for hidden."""
    width = 64 * m
    sgd = resolve_layers("mup", [10, width, width, 3], "relu", "sgd", base_width=64)
    adam = resolve_layers("mup", [10, width, width, 3], "relu", "adam", base_width=64)
    assert [layer.weight_lr_multiplier for layer in sgd] == [m, 1.0, m]
    assert [layer.weight_lr_multiplier for layer in adam] == [1.0, 1 / m, 1.0]
    assert sgd[2].multiplier == pytest.approx(1 / m)
    assert sgd[1].init_std == pytest.approx(math.sqrt(2 / width))


def test_ntk_uses_unit_weights_and_fan_in_multiplier():
    layers = resolve_layers("ntk", [10, 100, 3], "tanh", "sgd", base_width=64)
    assert [layer.init_std for layer in layers] == [1.0, 1.0]
    assert layers[0].multiplier == pytest.approx(1 / math.sqrt(10))
    assert layers[1].multiplier == pytest.approx(1 / math.sqrt(100))

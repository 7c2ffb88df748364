"""fit_commands: CSV validation errors (one line, named), happy paths for both fits, PNGs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lmech.errors import InputError
from lmech.cli.fit_commands import (
    curve_figure,
    fit_curve_csv,
    fit_scaling_csv,
    scaling_figure,
)

CHINCHILLA = Path(__file__).parents[1] / "data" / "epoch_chinchilla" / "chinchilla_points_tidy.csv"


def _write(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _scaling_csv(tmp_path, noise=0.005):
    rng = np.random.default_rng(0)
    n = np.repeat(np.logspace(7, 10, 6), 6)
    d = np.tile(np.logspace(8.5, 11.5, 6), 6)
    loss = (1.69 + 406.4 / n**0.34 + 410.7 / d**0.28) * np.exp(noise * rng.standard_normal(n.size))
    return _write(tmp_path / "runs.csv", ["params", "tokens", "loss"], zip(n, d, loss, strict=True))


def _one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_scaling_happy_path_json_and_figure(tmp_path):
    path = _scaling_csv(tmp_path)
    res = fit_scaling_csv(path, "params", "tokens", "loss", budgets=[1e21, 1e23], bootstrap=10)
    json.dumps(res)  # JSON-ready
    assert set(res) >= {"E", "A", "B", "alpha", "beta", "intervals", "allocation"}
    assert abs(res["alpha"] - 0.34) < 0.02 and abs(res["beta"] - 0.28) < 0.02  # as in theory tests
    assert set(res["intervals"]) == {"E", "A", "B", "alpha", "beta"}
    row = res["allocation"][0]
    assert set(row) == {"budget", "N_opt", "N_lo", "N_hi", "D_opt", "D_lo", "D_hi", "loss"}
    assert abs(6 * row["N_opt"] * row["D_opt"] / 1e21 - 1) < 1e-12  # budget spent exactly
    assert row["N_lo"] <= row["N_opt"] <= row["N_hi"]
    png = scaling_figure(path, tmp_path / "fig" / "scaling.png", res, "params", "tokens", "loss")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_on_chinchilla_file_default_columns_renamed(tmp_path):
    res = fit_scaling_csv(CHINCHILLA, "N_params", "D_tokens", "loss", budgets=[5.76e23], bootstrap=0)
    assert abs(res["alpha"] - 0.35) < 0.02 and res["allocation"][0]["N_lo"] is None


def test_curve_happy_path_and_figure(tmp_path):
    x = np.logspace(1, 4, 30)
    y = (2.0 + 30.0 * x**-0.5) * np.exp(0.003 * np.random.default_rng(1).standard_normal(x.size))
    path = _write(tmp_path / "log.csv", ["step", "loss", "lr"], [(a, b, 0.1) for a, b in zip(x, y, strict=True)])
    res = fit_curve_csv(path, "step", "loss", at=100000, bootstrap=20)
    json.dumps(res)
    fc = res["forecast"][0]
    assert fc["x"] == 100000 and fc["lo"] <= fc["loss"] <= fc["hi"]
    assert abs(fc["loss"] - (2.0 + 30.0 * 1e5**-0.5)) < 0.02  # tolerance as in the theory test
    png = curve_figure(path, tmp_path / "curve.png", res, "step", "loss")
    assert png.stat().st_size > 1000


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as exc:
        fit_scaling_csv(tmp_path / "nope.csv")
    assert "file not found" in _one_line(exc)


def test_missing_column_names_it_and_lists_available(tmp_path):
    path = _scaling_csv(tmp_path)
    with pytest.raises(InputError) as exc:
        fit_scaling_csv(path, "N", "tokens", "loss")
    msg = _one_line(exc)
    assert "'N'" in msg and "params, tokens, loss" in msg


@pytest.mark.parametrize(("bad", "what"), [("abc", "not a number"), ("-3", "> 0"), ("", "not a number"),
                                           ("nan", "> 0")])
def test_bad_value_names_column_and_row(tmp_path, bad, what):
    rows = [(10 * i + 10, 1.0 / (i + 1)) for i in range(10)]
    rows[3] = (40, bad)
    path = _write(tmp_path / "log.csv", ["step", "loss"], rows)
    with pytest.raises(InputError) as exc:
        fit_curve_csv(path, "step", "loss", at=1000, bootstrap=0)
    msg = _one_line(exc)
    assert "'loss'" in msg and "row 4" in msg and what in msg


def test_too_few_points(tmp_path):
    path = _write(tmp_path / "runs.csv", ["N", "D", "loss"], [(1e7 * (i + 1), 1e9 * (i + 2), 3.0 - 0.1 * i)
                                                             for i in range(6)])
    with pytest.raises(InputError) as exc:
        fit_scaling_csv(path, bootstrap=0)
    assert "too few points" in _one_line(exc)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError) as exc:
        fit_curve_csv(path, "step", "loss")
    assert "empty" in _one_line(exc)


EXAMPLES = Path(__file__).parents[2] / "examples"


def test_coupled_law_on_the_shipped_example_recovers_the_noise_floor(tmp_path):
    """examples/scaling_runs.csv has a true floor of 64 * 0.1^2 / 2 = 0.32 (README's forecasting section)."""
    res = fit_scaling_csv(EXAMPLES / "scaling_runs.csv", law="coupled", budgets=[1e9], bootstrap=10)
    json.dumps(res)
    assert res["law"] == "coupled" and set(res["intervals"]) == {"E", "A", "B", "alpha", "beta", "p"}
    assert abs(res["E"] / 0.32 - 1) < 0.05
    row = res["allocation"][0]
    assert abs(6 * row["N_opt"] * row["D_opt"] / 1e9 - 1) < 1e-9 and row["N_lo"] <= row["N_opt"] <= row["N_hi"]
    png = scaling_figure(EXAMPLES / "scaling_runs.csv", tmp_path / "coupled.png", res)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_law_is_one_line(tmp_path):
    with pytest.raises(InputError) as exc:
        fit_scaling_csv(_scaling_csv(tmp_path), "params", "tokens", "loss", law="chinchilla", bootstrap=0)
    assert "unknown law 'chinchilla'" in _one_line(exc)

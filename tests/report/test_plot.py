"""plot_runs: the drawn means and bands equal what the store holds, computed here independently."""

import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from lmech.engine import execute
from lmech.errors import InputError
from lmech.report.plot import plot_runs
from lmech.spec import SweepSpec, expand_sweep
from lmech.store import Store

LRS = [0.003, 0.1]  # span > 10x: the final-vs-lr figure gets a log x axis
SEEDS = [0, 1, 2]
REL = 1e-12  # float64 means summed in another order (DuckDB vs numpy): exact up to rounding


def make_store(root) -> Store:
    """Six tiny runs (lr x seed), 6 steps logged every 2, in one sweep named 'lr'."""
    store = Store(root)
    spec = SweepSpec.model_validate({"model": {"width": 4, "depth": 1}, "steps": 6, "observe": {"loss": {"every": 2}},
                                     "sweep": {"optimizer.lr": LRS, "seed": SEEDS}})
    execute(expand_sweep(spec), store, sweep="lr")
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("plot-store"))


def _lines(figure):
    return {line.get_label(): line for line in figure.axes[0].get_lines()}


def _close(a, b):
    return abs(a - b) <= REL * max(abs(a), abs(b), 1e-300)


def test_step_lines_are_the_means_over_seeds(store):
    figure = plot_runs(store, "loss/train", color_by="optimizer_lr")
    lines = _lines(figure)
    expected = store.query("select r.optimizer_lr, m.step, avg(m.value), min(m.value), max(m.value), count(*) "
                           "from metrics m join runs r using (run_id) where m.name = 'loss/train' "
                           "group by all order by 1, 2")
    assert sorted(lines) == [f"optimizer_lr={lr:g} (3 runs)" for lr in LRS]
    for lr in LRS:
        line = lines[f"optimizer_lr={lr:g} (3 runs)"]
        rows = [r for r in expected if r[0] == lr]
        assert all(r[5] == len(SEEDS) for r in rows)
        assert list(line.get_xdata()) == [float(r[1]) for r in rows]
        assert all(_close(y, r[2]) for y, r in zip(line.get_ydata(), rows))
    # bands: one polygon per lr whose y extremes are the min and max over seeds
    bands = figure.axes[0].collections
    assert len(bands) == len(LRS)
    for band, lr in zip(bands, LRS):
        ys = band.get_paths()[0].vertices[:, 1]
        rows = [r for r in expected if r[0] == lr]
        assert math.isclose(ys.min(), min(r[3] for r in rows), rel_tol=0, abs_tol=0)
        assert math.isclose(ys.max(), max(r[4] for r in rows), rel_tol=0, abs_tol=0)
    assert figure.axes[0].get_xscale() == "linear"  # steps start at 0


def test_final_value_vs_field_with_standard_error_band(store):
    figure = plot_runs(store, "loss/test", x="optimizer_lr", band="se")
    (line,) = figure.axes[0].get_lines()
    finals: dict[float, list[float]] = {}
    for run_id in store.run_ids():
        steps, values = store.series(run_id, "loss/test")
        finals.setdefault(store.spec(run_id)["optimizer"]["lr"], []).append(values[int(np.argmax(steps))])
    assert list(line.get_xdata()) == LRS
    assert all(_close(y, float(np.mean(finals[lr]))) for y, lr in zip(line.get_ydata(), LRS))
    ys = figure.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    for lr in LRS:  # the band is mean +- std(ddof=1)/sqrt(n) at each lr
        se = float(np.std(finals[lr], ddof=1) / math.sqrt(len(finals[lr])))
        for edge in (np.mean(finals[lr]) - se, np.mean(finals[lr]) + se):
            assert min(abs(ys - edge)) <= REL * abs(edge)
    assert figure.axes[0].get_xscale() == "log"  # positive lrs spanning 33x
    assert figure.axes[0].get_yscale() == "linear"  # losses within 10x


def test_where_selects_runs_and_changes_the_means(store):
    """Negative control: dropping a seed must change the drawn means (the comparison can fail)."""
    full = _lines(plot_runs(store, "loss/train", color_by="optimizer_lr"))
    some = _lines(plot_runs(store, "loss/train", color_by="optimizer_lr", where="seed < 2"))
    label = f"optimizer_lr={LRS[1]:g}"
    assert f"{label} (2 runs)" in some
    assert not np.allclose(full[f"{label} (3 runs)"].get_ydata()[1:], some[f"{label} (2 runs)"].get_ydata()[1:],
                           rtol=1e-6, atol=0)


def test_title_and_labels_fit_inside_the_figure(store):
    figure = plot_runs(store, "loss/train", color_by="optimizer_lr", where="model_width = 4")
    FigureCanvasAgg(figure).draw()
    box = figure.bbox
    axes = figure.axes[0]
    for text in (axes.title, axes.xaxis.label, axes.yaxis.label):
        extent = text.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1


@pytest.mark.parametrize("kwargs, words", [
    ({"metric": "loss/nope"}, "unknown metric 'loss/nope'"),
    ({"metric": "loss/train", "color_by": "optimizer_lrr"}, "unknown color_by field 'optimizer_lrr'"),
    ({"metric": "loss/train", "x": "widthh"}, "unknown x field 'widthh'"),
    ({"metric": "loss/train", "x": "task_name"}, "not numeric"),
    ({"metric": "loss/train", "where": "no_such_column > 1"}, "invalid where"),
    ({"metric": "loss/train", "where": "seed > 100"}, "no runs have metric"),
    ({"metric": "loss/train", "band": "iqr"}, "unknown band 'iqr'"),
])
def test_bad_names_are_one_line_input_errors(store, kwargs, words):
    with pytest.raises(InputError) as caught:
        plot_runs(store, **kwargs)
    assert words in str(caught.value) and "\n" not in str(caught.value)

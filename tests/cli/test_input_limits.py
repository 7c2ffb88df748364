"""Hostile input to `lmech sweep` and `lmech fit`: each case of the issue is one line on stderr and exit 2,
quickly, and a valid neighbour of it still passes (so no check here passes by refusing everything)."""

import json
import time

import pytest
from typer.testing import CliRunner

from lmech.cli import app
from lmech.cli.spec_input import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES
from lmech.spec import RunSpec

runner = CliRunner()


def _invoke(*args):
    start = time.perf_counter()
    result = runner.invoke(app, [str(a) for a in args])
    return result, time.perf_counter() - start


def _refused(result, *fragments):
    """Exit 2, one short line on stderr holding every fragment, nothing on stdout, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[:2000]
    assert len(lines[0]) <= 1000, len(lines[0])
    assert not result.stdout.strip() and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _dry_run(tmp_path, text: str | None, *sets):
    args = ["sweep", "--dry-run", "--json", "--runs", tmp_path / "runs"]
    if text is not None:
        (tmp_path / "spec.yaml").write_text(text)
        args.insert(1, tmp_path / "spec.yaml")
    for item in sets:
        args += ["--set", item]
    return _invoke(*args)


def _alias_bomb(levels: int) -> str:
    """The billion-laughs document: each level is nine aliases of the one below (9^levels strings)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(tmp_path):
    bomb = _alias_bomb(9)
    assert len(bomb) <= 496  # the 496 bytes, 9^9 strings once expanded
    result, seconds = _dry_run(tmp_path, bomb)
    _refused(result, f"more than {MAX_NODES} values", "aliases")
    assert seconds < 5


def test_aliases_under_the_limit_still_load(tmp_path):
    result, _ = _dry_run(tmp_path, "steps: &s 7\nsweep:\n  seed: [*s, 8]\n")
    assert result.exit_code == 0, result.output
    assert [run["seed"] for run in json.loads(result.stdout)["runs"]] == [7, 8]


def test_a_large_expanded_input_prints_a_short_excerpt(tmp_path):
    """388 bytes that expand to 9^4 values under a field: the message quotes an excerpt, not megabytes."""
    text = _alias_bomb(4) + "seed: *d\n"
    assert len(text) <= 388
    result, _ = _dry_run(tmp_path, text)
    line = _refused(result, "seed")
    assert len(result.output) < 1000 and "..." in line


@pytest.mark.parametrize("style", ["block", "flow"])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path, style):
    depth = 500
    if style == "flow":
        text = "sweep: {seed: " + "[" * depth + "0" + "]" * depth + "}\n"
    else:
        text = "".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "b: 1\n"
    result, _ = _dry_run(tmp_path, text)
    _refused(result, f"deeper than {MAX_DEPTH} levels")


def test_deep_set_value_and_key_are_refused(tmp_path):
    result, _ = _dry_run(tmp_path, None, "sweep.seed=" + "[" * 500 + "]" * 500)
    _refused(result, "--set sweep.seed", f"deeper than {MAX_DEPTH}")
    result, _ = _dry_run(tmp_path, None, ".".join(["model"] * 100) + "=1")
    _refused(result, f"{MAX_DEPTH} parts")


def test_oversized_spec_file_names_the_limit(tmp_path):
    result, _ = _dry_run(tmp_path, "name: x\n" + "# padding\n" * (MAX_SPEC_BYTES // 10 + 1))
    _refused(result, f"{MAX_SPEC_BYTES // 1024} KiB")


def test_empty_spec_file_is_refused(tmp_path):
    for text in ("", "# only a comment\n", "null\n"):
        _refused(_dry_run(tmp_path, text)[0], "is empty")
    result, _ = _dry_run(tmp_path, "steps: 3\n")  # one field is enough
    assert result.exit_code == 0, result.output


def test_non_utf8_spec_file_is_refused(tmp_path):
    (tmp_path / "spec.yaml").write_bytes(b"steps: \xff\xfe\n")
    result, _ = _invoke("sweep", tmp_path / "spec.yaml", "--dry-run", "--runs", tmp_path / "runs")
    _refused(result, "not UTF-8")


@pytest.mark.parametrize(("item", "fragment"), [
    ("model.depth=false", "model.mlp.depth"),
    ("model.width=true", "model.mlp.width"),
    ("optimizer.lr=true", "optimizer.lr"),
    ("model.width=2^64", "model.mlp.width"),
    ("model.width=18446744073709551616", "less than or equal to 16384"),
    ("steps=1e9", "less than or equal to 10000000"),
    ("steps=1.5", "steps"),
    ("seed=abc", "seed"),
    ("optimizer.lr=.inf", "finite"),
    ("model.output_multiplier=.nan", "finite"),
    ("model.init_scale=-.inf", "model.mlp.init_scale"),
    ("sweep.seed=[]", "has no values"),
])
def test_bad_set_values_are_one_line(tmp_path, item, fragment):
    _refused(_dry_run(tmp_path, None, item)[0], fragment)


def test_task_n_train_above_the_limit(tmp_path):
    result, _ = _dry_run(tmp_path, None, "task.name=gaussian_regression", "task.n_train=1e9")
    _refused(result, "task.gaussian_regression.n_train", "10000000")
    result, _ = _dry_run(tmp_path, None, "task.name=gaussian_regression", "task.n_train=1e3")
    assert result.exit_code == 0, result.output  # 1e3 is the integer 1000, as people mean it


@pytest.mark.parametrize("text", ["optimizer:\n  lr: .inf\n", "model:\n  output_multiplier: .nan\n",
                                  "model:\n  depth: false\n", "steps: 1e9\n", "sweep:\n  seed: [0, .nan]\n"])
def test_bad_values_in_a_spec_file(tmp_path, text):
    _refused(_dry_run(tmp_path, text)[0], "invalid spec")


def test_a_sweep_past_the_run_limit_is_refused(tmp_path):
    result, _ = _dry_run(tmp_path, "sweep:\n  seed: " + json.dumps(list(range(101))) + "\n  data_seed: "
                         + json.dumps(list(range(100))) + "\n")
    _refused(result, "10100 runs", "limit of 10000")


def test_yaml_exponents_are_numbers_and_valid_specs_pass(tmp_path):
    result, _ = _dry_run(tmp_path, "steps: 1e2\noptimizer:\n  lr: 1e-3\nsweep:\n  seed: [0, 1]\n")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [r["steps"] for r in runs] == [100, 100] and runs[0]["optimizer"] == "sgd lr=0.001"


def test_dry_run_lists_runs_and_writes_nothing(tmp_path):
    result, _ = _dry_run(tmp_path, "steps: 2\nsweep:\n  seed: [0, 1, 2]\n")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    expected = RunSpec(steps=2, seed=1).id
    assert out["new"] == 3 and out["done"] == 0 and out["runs"][1]["run_id"] == expected
    assert not (tmp_path / "runs").exists()


def test_phenomenon_style_specs_built_in_code_still_validate():
    """Strict numbers refuse bools and strings, not the ints a float field is given in code."""
    from lmech.models.mlp import ModelSpec

    spec = RunSpec(model=ModelSpec(width=8, init_scale=1, output_multiplier=2), steps=3)
    assert spec.model.init_scale == 1.0 and isinstance(spec.model.init_scale, float)
    assert RunSpec.model_validate(spec.model_dump(mode="json")) == spec  # tuples come back from lists


# ---- lmech fit -------------------------------------------------------------------------------------

def _curve_rows(n=12):
    return [f"{10 * (i + 1)},{1.0 + 5.0 * (10 * (i + 1)) ** -0.5:.6f}" for i in range(n)]


def _fit_curve(tmp_path, lines, *options):
    (tmp_path / "curve.csv").write_text("\n".join(lines) + "\n")
    return _invoke("fit", "curve", tmp_path / "curve.csv", "--figure", tmp_path / "fig.png", "--json",
                   *options)[0]


def test_curve_csv_happy_path(tmp_path):
    result = _fit_curve(tmp_path, ["step,loss", *_curve_rows()], "--bootstrap", 10, "--at", 1000)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_points"] == 12


def test_decimal_comma_is_a_field_count_error_naming_the_line(tmp_path):
    rows = _curve_rows()
    rows[4] = "642,1,5"
    line = _refused(_fit_curve(tmp_path, ["step,loss", *rows]), "line 6", "3 fields", "header has 2")
    assert "decimal comma" in line


def test_missing_field_is_a_field_count_error(tmp_path):
    rows = _curve_rows()
    rows[0] = "10"
    _refused(_fit_curve(tmp_path, ["step,loss", *rows]), "line 2", "1 fields")


def test_huge_cell_is_refused(tmp_path):
    rows = _curve_rows()
    rows[2] = "30," + "1" * 200_000
    _refused(_fit_curve(tmp_path, ["step,loss", *rows]), "line 4")
    rows[2] = "30," + "1" * 1000
    _refused(_fit_curve(tmp_path, ["step,loss", *rows]), "row 3", "1000 characters")


def test_repeated_column_and_bom(tmp_path):
    _refused(_fit_curve(tmp_path, ["step,loss,loss", *[r + ",1" for r in _curve_rows()]]), "appears 2 times")
    result = _fit_curve(tmp_path, ["\ufeffstep,loss", *_curve_rows()], "--bootstrap", 10)
    assert result.exit_code == 0, result.output  # a spreadsheet's byte-order mark is not part of the name


def test_non_utf8_csv(tmp_path):
    (tmp_path / "curve.csv").write_bytes(b"step,loss\n1,\xff\n")
    _refused(_invoke("fit", "curve", tmp_path / "curve.csv")[0], "not UTF-8")


@pytest.mark.parametrize("bootstrap", [0, 9, 100_001, 10**20])
def test_bootstrap_out_of_range_names_the_range(tmp_path, bootstrap):
    result = _fit_curve(tmp_path, ["step,loss", *_curve_rows()], "--bootstrap", bootstrap)
    _refused(result, "between 10 and 100000")


@pytest.mark.parametrize("at", ["nan", "inf", "-1", "0", "1e31"])
def test_forecast_points_must_be_finite_and_positive(tmp_path, at):
    _refused(_fit_curve(tmp_path, ["step,loss", *_curve_rows()], "--at", at), "--at")


def test_scaling_budget_must_be_finite(tmp_path):
    (tmp_path / "runs.csv").write_text("N,D,loss\n1,1,1\n")
    result, _ = _invoke("fit", "scaling", tmp_path / "runs.csv", "--budget", "inf")
    _refused(result, "--budget")


def test_non_finite_intervals_are_refused():
    """A fit whose bootstrap intervals are NaN (or missing: every resample degenerate) is refused."""
    from types import SimpleNamespace

    from lmech.cli.fit_commands import _check_finite
    from lmech.errors import InputError

    good = SimpleNamespace(E=1.0, A=2.0, alpha=0.5, intervals={"E": (0.9, 1.1), "A": (1, 3), "alpha": (0.4, 0.6)})
    _check_finite(good, ("E", "A", "alpha"), 10)
    for bad in (dict(intervals={**good.intervals, "A": (float("nan"), 3.0)}), dict(intervals={}),
                dict(alpha=float("inf"))):
        with pytest.raises(InputError, match="not finite|non-finite"):
            _check_finite(SimpleNamespace(**{**vars(good), **bad}), ("E", "A", "alpha"), 10)


# ---- found by tests/cli/test_fuzz.py, outside the input layer ----------------------------------------

@pytest.mark.parametrize("sets", [
    ["task.name=markov_language", "task.n_train=8", "task.n_test=4"],  # int64 tokens into an MLP
    ["task.name=in_context_regression", "task.n_train=8", "task.n_test=4"],  # (N, T, D) sequences
    ["loss=mse"],  # an MSE loss on the digits' class labels
])
def test_mlp_on_data_it_cannot_take_is_one_line(tmp_path, sets):
    args = ["sweep", "--runs", tmp_path / "runs", "--set", "steps=1"]
    for item in sets:
        args += ["--set", item]
    _refused(_invoke(*args)[0])

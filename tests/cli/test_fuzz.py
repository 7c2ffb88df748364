"""Fuzzing the CLI's input paths with hypothesis: YAML spec files, `--set` values, CSVs and fit options.

Every case goes through the typer app in-process (CliRunner) and must end in exit 0, 1 or 2 with no
exception escaping, no traceback in the output, a bad-input exit as one short `error:` line, and
within the per-case deadline (hypothesis `deadline`). Inputs known to be invalid come from their own
strategies (every bounded or typed field of every spec class, read from its pydantic metadata, so a
new field is fuzzed without editing this file; corrupted CSVs; out-of-range fit options) and must
exit 2: never 0. Specs are checked with `sweep --dry-run` (validate and expand, no training); one
slow test trains small accepted specs for a few steps. `derandomize=True` fixes the cases.
"""

import json
import math
import traceback
import typing
from pathlib import Path

import pytest
from annotated_types import Ge, Gt, Le, Lt
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lmech.cli import app
from lmech.models.family import FAMILIES
from lmech.spec import OptimizerSpec, RunSpec
from lmech.tasks import TaskSpec

runner = CliRunner()


def _fuzz(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=30_000, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def _invoke(args) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(*result.exc_info)) + f"\nargs: {args!r}"[:3000])
    assert result.exit_code in (0, 1, 2), (result.exit_code, args)
    assert "Traceback" not in result.output, result.output[-3000:]
    event(f"exit {result.exit_code}")
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) <= 1000, \
            (result.stderr[:3000], args)
    return result


def _refused(args) -> None:
    result = _invoke(args)
    assert result.exit_code == 2, (f"accepted known-invalid input {args!r}"[:2000], result.output[:1000])


# ---- spec fields, read from the spec classes ----------------------------------------------------

def _task_classes():
    return typing.get_args(typing.get_args(TaskSpec)[0])


def _bases():
    """(prefix, --set items that select a valid section, spec class) for every task, family, the optimizer
    and the top level."""
    out = [("", [], RunSpec), ("optimizer.", [], OptimizerSpec)]
    for cls in _task_classes():
        out.append(("task.", [f"task.name={cls.model_fields['name'].default}"], cls))
    extra = {"deep_linear": ["model.activation=linear", "model.bias=false"],
             "factory": ["model.factory=tests.cli.cli_fixtures:make_mlp"]}
    for kind, family in FAMILIES.items():
        out.append(("model.", [f"model.kind={kind}", *extra.get(kind, [])], family.spec))
    return out


def _types(annotation) -> set:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return {"literal"}
    if args and typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType")):
        return set().union(*(_types(a) for a in args if a is not type(None)))
    return {typing.get_origin(annotation) or annotation}


def _bad_values(info) -> list[str]:
    """YAML texts that no value of this field accepts: wrong types, non-finite numbers, past its bounds."""
    kinds = _types(info.annotation)
    bad = []
    if kinds == {int}:
        bad += ["true", "1.5", "'7'", ".nan", "[1]"]
    elif kinds == {float}:
        bad += ["true", "'0.5'", ".nan", ".inf", "-.inf", "{}"]
    elif kinds == {bool}:
        bad += ["2", "'yes'", "0.0"]
    elif kinds == {"literal"}:
        bad += ["no_such_choice", "[]"]
    elif kinds == {tuple}:
        bad += ["'x'", "[true]", "[.nan]"]
    elif kinds == {str}:
        bad += ["1", "[]"]
    elif kinds == {dict}:
        bad += ["[1]", "'x'"]
    if kinds & {int, float}:
        for m in info.metadata:
            if isinstance(m, Ge):
                bad.append(str(m.ge - 1))
            elif isinstance(m, Gt):
                bad.append(str(m.gt))
            elif isinstance(m, Le):
                bad.append(str(m.le + 1))
            elif isinstance(m, Lt):
                bad.append(str(m.lt))
    return bad


def _bad_cases() -> list[tuple[str, ...]]:
    cases = []
    for prefix, base, cls in _bases():
        for name, info in cls.model_fields.items():
            if name in ("name", "kind") and prefix:
                continue  # the discriminator: an unknown one is in _UNKNOWN below
            cases += [(*base, f"{prefix}{name}={value}") for value in _bad_values(info)]
    return cases


def _good_values(info) -> list[str]:
    """YAML texts inside this field's type and bounds (cross-field rules may still refuse them)."""
    kinds = _types(info.annotation)
    if kinds == {"literal"}:
        return [json.dumps(v) for a in [info.annotation, *typing.get_args(info.annotation)]
                if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
    if kinds == {bool} or kinds == {bool, type(None)}:
        return ["true", "false"]
    if not kinds <= {int, float}:
        return []
    low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    low = next((m.gt + (1 if kinds == {int} else 0.25) for m in info.metadata if isinstance(m, Gt)), low)
    high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    high = next((m.lt - (1 if kinds == {int} else 0.25) for m in info.metadata if isinstance(m, Lt)), high)
    low = 0 if low is None else low
    values = {low, low + 1, low + 2, low + 7} if kinds == {int} else {low, low + 0.5, low + 1e-3, float(low) * 3 + 1}
    if high is not None:
        values = {min(v, high) for v in values} | {high}
    return [json.dumps(v) for v in sorted(values)]


def _good_cases() -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(base), f"{prefix}{name}={value}") for prefix, base, cls in _bases()
            for name, info in cls.model_fields.items() if not (name in ("name", "kind") and prefix)
            for value in _good_values(info)]


BAD_SETS = _bad_cases()
GOOD_SETS = _good_cases()
_UNKNOWN = [("task.name=no_such_task",), ("model.kind=no_such_kind",), ("no_such_field=1",),
            ("optimizer.no_such=1",), ("model.width.x=1",), ("sweep.no_such=[1]",), ("sweep.seed=[]",),
            ("sweep.seed=3",), ("sweep=[1]",), ("name=''",), ("name=" + "x" * 201,), ("steps",),
            ("sweep.seed=" + json.dumps(list(range(101))), "sweep.data_seed=" + json.dumps(list(range(100)))),
            ("sweep.seed=" + "[" * 40 + "]" * 40,), ("sweep.seed=&a [*a]",)]
PATHS = sorted({item.split("=", 1)[0] for case in BAD_SETS for item in case})


def test_the_known_invalid_cases_cover_every_family_and_task():
    prefixes = {case[0] for case in BAD_SETS}
    assert {f"model.kind={kind}" for kind in FAMILIES} <= prefixes
    assert {f"task.name={cls.model_fields['name'].default}" for cls in _task_classes()} <= prefixes
    assert len(BAD_SETS) > 300


_TOKENS = ["0", "1", "-1", "2", "3", "7", "64", "1e3", "1e-3", "0.5", "1.5", "-0.0", ".inf", "-.inf", ".nan",
           "true", "false", "null", "~", "''", "'x'", "[]", "[1, 2]", "[0.1, 0.2]", "{}", "{a: 1}", "&a [1]", "*a",
           "!!binary AAAA", "!!python/name:os.system", "2001-12-14", "0x10", "1:30", "yes", "no", "'", '"', "{",
           "[", "- 1", "a: b", "16385", "18446744073709551616", "1e400", "1e9", "sgd", "adam", "mlp", "transformer",
           "cnn", "digits", "gaussian_regression", "linear", "relu", "mup", "labels", "1" * 5000]
TOKEN = st.one_of(st.sampled_from(_TOKENS), st.text(max_size=20),
                  st.lists(st.sampled_from(_TOKENS[:20]), max_size=4).map(lambda v: "[" + ", ".join(v) + "]"))
KEY = st.one_of(st.sampled_from(PATHS + ["sweep.seed", "sweep.optimizer.lr", "sweep.model.width", "name", "sweep",
                                         "observe.loss.every", "observe.sharpness.k", "model", "task"]),
                st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.", max_size=20))
SETS = st.lists(st.tuples(KEY, TOKEN).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=5)


def _yaml_text(pairs: list[tuple[str, str]]) -> str:
    """Nested block YAML with the raw token texts at the dotted paths (a path under a leaf is dropped)."""
    tree: dict = {}
    for path, token in pairs:
        node, parts = tree, [p or "x" for p in path.split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            if not isinstance(node.get(parts[-1]), dict):
                node[parts[-1]] = token

    def render(node, indent):
        return "".join(f"{' ' * indent}{json.dumps(k)}:\n{render(v, indent + 2)}" if isinstance(v, dict)
                       else f"{' ' * indent}{json.dumps(k)}: {v}\n" for k, v in node.items())
    return render(tree, 0)


_YAML_CHARS = "[]{}:,-&*!|>'\"#%@?\n\t .0123456789eEabcdxyz_"
SPEC_TEXT = st.one_of(st.lists(st.tuples(KEY, TOKEN), max_size=8).map(_yaml_text),
                      st.text(alphabet=_YAML_CHARS, max_size=200), st.text(max_size=100))


def _dry_run(tmp: Path, text: str | None, sets: typing.Sequence[str]):
    args = ["sweep", "--dry-run", "--json", "--runs", tmp / "runs"]
    if text is not None:
        (tmp / "spec.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        args.insert(1, tmp / "spec.yaml")
    for item in sets:
        args.append(f"--set={item}")
    return args


@_fuzz(300)
@given(text=SPEC_TEXT, sets=st.lists(st.sampled_from(["steps=3", "seed=1", "sweep.seed=[0, 1]"]), max_size=2))
def test_fuzz_spec_files(tmp_path, text, sets):
    result = _invoke(_dry_run(tmp_path, text, sets))
    if result.exit_code == 0:
        assert json.loads(result.stdout)["runs"]


@_fuzz(300)
@given(sets=SETS)
def test_fuzz_set_values(tmp_path, sets):
    result = _invoke(_dry_run(tmp_path, None, sets))
    if result.exit_code == 0:
        assert json.loads(result.stdout)["runs"]


@_fuzz(400)
@given(case=st.sampled_from(BAD_SETS + _UNKNOWN), in_file=st.booleans(), other=st.sampled_from([[], ["seed=2"]]))
def test_fuzz_known_invalid_specs_exit_2(tmp_path, case, in_file, other):
    """Each known-invalid value, as `--set` or in a spec file, is refused with exit 2."""
    keys = {item.split("=", 1)[0] for item in case}
    other = [item for item in other if item.split("=", 1)[0] not in keys]
    if in_file and not any(len(item) > 4000 for item in case):
        *base, bad = case
        path, value = bad.split("=", 1) if "=" in bad else (bad, "")
        base = [item for item in base if item.split("=", 1)[0] != path]  # a --set of the same key would override it
        _refused(_dry_run(tmp_path, _yaml_text([(path, value or "null")]), [*base, *other]))
    else:
        _refused(_dry_run(tmp_path, None, [*case, *other]))


@st.composite
def valid_specs(draw):
    """A task or model section chosen, one to three of its fields set inside their bounds, perhaps as a
    sweep axis over two such values."""
    base, first = draw(st.sampled_from(GOOD_SETS))
    same = [item for b, item in GOOD_SETS if b == base]
    items = [first, *draw(st.lists(st.sampled_from(same), max_size=2))]
    if draw(st.booleans()):
        path, value = items[0].split("=", 1)
        other = draw(st.sampled_from([item.split("=", 1)[1] for item in same if item.startswith(path + "=")]))
        items[0] = f"sweep.{path}=[{value}, {other}]"
    return [*base, "steps=3", *items]


@_fuzz(300)
@given(sets=valid_specs())
def test_fuzz_valid_field_values(tmp_path, sets):
    """In-bounds values of every field: exit 0 with the runs the axes expand to, or 2 (a cross-field rule)."""
    result = _invoke(_dry_run(tmp_path, None, sets))
    if result.exit_code == 0:
        axes = [item for item in sets if item.startswith("sweep.")]
        assert len(json.loads(result.stdout)["runs"]) in ((1, 2) if axes else (1,))


# ---- training small accepted specs ----------------------------------------------------------------

SMALL_TASKS = {
    "gaussian_regression": ["task.n_train=8", "task.n_test=8", "task.input_dim=3"],
    "teacher_student": ["task.n_train=8", "task.n_test=8", "task.input_dim=3", "task.teacher_width=3"],
    "deep_linear": ["task.input_dim=3", "task.output_dim=3", "task.singular_values=[2, 1]", "task.n_test=8"],
    "digits": [],
    "modular_addition": ["task.modulus=5"],
    "power_law_features": ["task.n_train=8", "task.n_test=4", "task.n_features=4", "task.latent_dim=16"],
    "power_law_map": ["task.n_train=8", "task.n_test=8", "task.input_dim=4", "task.output_dim=3"],
    "modular_arithmetic_tokens": ["task.modulus=5"],
    "markov_language": ["task.vocab_size=4", "task.seq_len=8", "task.n_train=8", "task.n_test=4"],
    "quanta": ["task.n_tasks=4", "task.n_bits=8", "task.k=2", "task.n_train=16", "task.n_test=8"],
    "associative_recall": ["task.vocab_size=8", "task.n_pairs=2", "task.n_queries=2", "task.seq_len=8",
                           "task.n_train=8", "task.n_test=4"],
    "in_context_regression": ["task.input_dim=2", "task.n_points=4", "task.n_train=8", "task.n_test=4"],
    "mnist1d": ["task.n_samples=20"],
}
SMALL_MODELS = [
    ["model.kind=mlp"], ["model.kind=deep_linear", "model.activation=linear", "model.bias=false"],
    ["model.kind=transformer", "model.heads=2", "model.context=16"], ["model.kind=cnn", "model.depth=1"],
    ["model.kind=resmlp", "model.depth=1"], ["model.kind=linear_recurrence", "model.depth=1"],
]
SMALL_RUN = st.tuples(
    st.sampled_from(sorted(SMALL_TASKS)), st.sampled_from(SMALL_MODELS),
    st.sampled_from([1, 2, 4, 8]), st.sampled_from(["sgd", "adam", "adamw"]),
    st.sampled_from([1e-3, 0.1, 1e3]), st.integers(0, 3), st.sampled_from([None, 1, 3]),
    st.sampled_from(["sp", "ntk", "mup"]), st.sampled_from(["seed=0", "sweep.seed=[0, 1]", "data_seed=null"]),
    st.lists(st.sampled_from(["optimizer.schedule=cosine", "optimizer.clip_norm=1", "model.output_multiplier=0",
                              "model.zero_init_readout=true", "observe.loss.every=1", "loss=mse"]), max_size=2))


@pytest.mark.slow
@_fuzz(80)
@given(run=SMALL_RUN)
def test_fuzz_training_small_accepted_specs(tmp_path, run):
    """Accepted specs train (a few steps, tiny sizes) to exit 0, or are refused with exit 2 when a task and
    model do not fit together; never a traceback, even when a run diverges (lr = 1e3)."""
    task, model, width, optimizer, lr, steps, batch, parameterization, seeds, extra = run
    width_set = [] if "deep_linear" in model[0] else [f"model.width={width * 2}"]
    sets = [f"task.name={task}", *SMALL_TASKS[task], *model, *width_set, f"optimizer.name={optimizer}",
            f"optimizer.lr={lr}", f"steps={steps}", f"optimizer.batch_size={'null' if batch is None else batch}",
            f"model.parameterization={parameterization}", seeds, *extra]
    result = _invoke(["sweep", "--json", "--runs", tmp_path / "runs", *[f"--set={s}" for s in sets]])
    if result.exit_code == 0:
        out = json.loads(result.stdout)
        assert out["trained"] + out["skipped"] == len(out["runs"]) >= 1


# ---- CSVs and fit options -------------------------------------------------------------------------

def _curve_rows(n: int = 12) -> list[list[str]]:
    return [[str(10 * (i + 1)), f"{1.0 + 5.0 * (10 * (i + 1)) ** -0.5:.6f}"] for i in range(n)]


CELL = st.one_of(
    st.floats(min_value=1e-6, max_value=1e9).map(repr), st.integers(1, 10**6).map(str),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "-1", "0", "1,5", "abc", '"1"', '"1,5"', "1e400", "1_000",
                     "\u0661", "1" * 500, "\x00", '"', "0x10", "1e-400"]),
    st.text(max_size=8))


@st.composite
def csv_texts(draw):
    header = draw(st.lists(st.sampled_from(["step", "loss", "x", "step", " loss ", "\ufeffstep", ""]), min_size=0,
                           max_size=4))
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=25))
    if draw(st.booleans()):  # mostly well-formed: a valid curve with a few cells replaced
        header, rows = ["step", "loss"], _curve_rows(draw(st.integers(0, 14)))
        for _ in range(draw(st.integers(0, 2))):
            if rows:
                rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, 1))] = draw(CELL)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(",".join(row) for row in [header, *rows]) + end


@_fuzz(150)
@given(text=csv_texts(), garbage=st.binary(max_size=4))
def test_fuzz_curve_csv(tmp_path, text, garbage):
    path = tmp_path / "curve.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass") + garbage)
    result = _invoke(["fit", "curve", path, "--bootstrap", "10", "--figure", tmp_path / "fig.png", "--json"])
    if result.exit_code == 0:
        out = json.loads(result.stdout)
        assert all(math.isfinite(v) for pair in out["intervals"].values() for v in pair)


@st.composite
def corrupted_csvs(draw):
    """A valid curve CSV with one change that makes it invalid (a decimal comma, a missing or extra field,
    a bad number, a repeated or missing column)."""
    rows = _curve_rows(12)
    k = draw(st.integers(0, len(rows) - 1))
    change = draw(st.sampled_from(["comma", "extra", "missing", "bad", "repeat", "no_loss"]))
    header = ["step", "loss"]
    if change == "comma":
        rows[k][1] = rows[k][1].replace(".", ",")
    elif change == "extra":
        rows[k].append(draw(st.sampled_from(["1", "", "x"])))
    elif change == "missing":
        rows[k].pop(draw(st.integers(0, 1)))
    elif change == "bad":
        rows[k][draw(st.integers(0, 1))] = draw(st.sampled_from(["nan", "inf", "-1", "0", "abc", "", "1e400"]))
    elif change == "repeat":
        header, rows = ["step", "loss", "loss"], [[*r, r[1]] for r in rows]
    else:
        header = ["step", "value"]
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


@_fuzz(150)
@given(text=corrupted_csvs())
def test_fuzz_corrupted_csvs_exit_2(tmp_path, text):
    (tmp_path / "curve.csv").write_text(text)
    _refused(["fit", "curve", tmp_path / "curve.csv", "--bootstrap", "10", "--figure", tmp_path / "f.png"])


BAD_BOOTSTRAP = st.one_of(st.integers(max_value=9), st.integers(min_value=100_001))
POINTS = st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3)


@pytest.mark.slow
@_fuzz(60)
@given(bootstrap=st.one_of(BAD_BOOTSTRAP, st.integers(10, 12)), at=POINTS, law=st.sampled_from(["curve", "scaling"]))
def test_fuzz_fit_options(tmp_path, bootstrap, at, law):
    """Out-of-range --bootstrap, or a non-finite, non-positive or huge --at/--budget: exit 2; else a fit."""
    valid = 10 <= bootstrap <= 100_000 and all(math.isfinite(a) and 0 < a <= (1e30 if law == "curve" else 1e40)
                                               for a in at)
    if law == "curve":
        (tmp_path / "data.csv").write_text("\n".join(",".join(r) for r in [["step", "loss"], *_curve_rows()]) + "\n")
        args = ["fit", "curve", tmp_path / "data.csv", *[f"--at={a!r}" for a in at]]
    else:
        data = Path(__file__).parents[2] / "examples" / "scaling_runs.csv"
        args = ["fit", "scaling", data, *[f"--budget={a!r}" for a in at]]
    args += [f"--bootstrap={bootstrap}", "--figure", tmp_path / "fig.png", "--json"]
    if valid:
        _invoke(args)  # a fit: exit 0, or 2 where the fitted law overflows at a far point
    else:
        _refused(args)

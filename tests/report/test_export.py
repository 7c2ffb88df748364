"""export_store: every exported scalar, read back with that tool's own reader, equals the store's."""

import csv
import json
import math
import struct
import sys

import pytest

from lmech.errors import InputError
from lmech.report.export import export_store
from tests.report.test_plot import make_store

SPECIAL = [(0, "loss/train", float("nan")), (1, "loss/train", float("inf")), (1, "acc", -0.0),
           (2, "loss/train", 0.1 + 0.2)]  # non-finite values and a float with all 17 digits


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The plot tests' six runs plus one hand-written run (no sweep, other fields, non-finite values)."""
    store = make_store(tmp_path_factory.mktemp("export-store"))
    store.write("special", {"seed": 7, "optimizer": {"lr": 0.5}}, SPECIAL, {"status": "completed"})
    return store


def _same(a: float, b: float) -> bool:
    """Exact equality, NaN equal to NaN (the sign of zero included)."""
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def _metrics(store) -> dict[tuple[str, int, str], float]:
    return {(r, s, n): v for r, s, n, v in store.query("select run_id, step, name, value from metrics")}


def _assert_equal_metrics(read: dict, store) -> None:
    expected = _metrics(store)
    assert sorted(read) == sorted(expected)
    bad = [key for key in expected if not _same(read[key], expected[key])]
    assert not bad, f"{len(bad)} values differ, e.g. {bad[0]}: {read[bad[0]]} vs {expected[bad[0]]}"


def test_csv_holds_every_row_and_the_runs_columns(store, tmp_path):
    out = tmp_path / "all.csv"
    result = export_store(store, "csv", out)
    columns = [row[0] for row in store.query("describe runs")]
    runs = {row[0]: dict(zip(columns, row)) for row in store.query("select * from runs")}
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["run_id", "step", "name", "value", *columns[1:]]
        rows = list(reader)
    assert result == {"format": "csv", "out": str(out), "runs": 7, "rows": len(rows)}
    _assert_equal_metrics({(r["run_id"], int(r["step"]), r["name"]): float(r["value"]) for r in rows}, store)
    for row in rows:
        for column in columns[1:]:
            want = runs[row["run_id"]][column]
            got = row[column]
            assert (got == "" if want is None else
                    _same(float(got), want) if isinstance(want, float) else got == str(want)), (column, got, want)


def test_csv_where_and_refusals(store, tmp_path):
    result = export_store(store, "csv", tmp_path / "seed0.csv", where="seed = 0")
    assert result["runs"] == 2 and result["rows"] == 2 * 8  # 2 lrs; 4 logged steps x 2 metrics
    for kwargs, words in [({"fmt": "csv", "out": tmp_path / "seed0.csv"}, "already exists"),
                          ({"fmt": "parquet", "out": tmp_path / "x"}, "unknown export format 'parquet'"),
                          ({"fmt": "csv", "out": tmp_path / "y.csv", "where": "nope = 1"}, "invalid where"),
                          ({"fmt": "csv", "out": tmp_path / "z.csv", "where": "seed > 99"}, "no runs to export")]:
        with pytest.raises(InputError) as caught:
            export_store(store, **kwargs)
        assert words in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "y.csv").exists() and not (tmp_path / "z.csv").exists()


def test_tensorboard_event_files_read_back_exactly(store, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    export_store(store, "tensorboard", tmp_path / "tb")
    read = {}
    for run_id in store.run_ids():
        accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tb" / run_id),
                                                         size_guidance={event_accumulator.TENSORS: 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            for event in accumulator.Tensors(tag):
                assert (run_id, event.step, tag) not in read
                read[(run_id, event.step, tag)] = tensor_util.make_ndarray(event.tensor_proto).item()
    _assert_equal_metrics(read, store)


def test_tensorboard_scalars_dashboard_sees_the_same_values(store, tmp_path):
    """TensorBoard's own data provider (what its scalars dashboard reads) gets the exact values."""
    pytest.importorskip("tensorboard")
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    export_store(store, "tensorboard", tmp_path / "tb")
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "tb"))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path / "tb"))
    scalars = provider.read_scalars(context.RequestContext(), experiment_id="", plugin_name="scalars",
                                    downsample=10_000)
    _assert_equal_metrics({(run, point.step, tag): point.value for run, tags in scalars.items()
                           for tag, points in tags.items() for point in points}, store)


def test_mlflow_file_store_reads_back_exactly(store, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from lmech.report.export import _spec_fields

    export_store(store, "mlflow", tmp_path / "ml")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # newer MLflow reads file stores only with it
    client = MlflowClient(tracking_uri=(tmp_path / "ml").as_uri())
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert {"lr", "lmech"} <= set(experiments)
    read, names = {}, []
    for run in client.search_runs(list(experiments.values()), max_results=1000):
        run_id = run.info.run_name
        names.append(run_id)
        assert run.data.tags["lmech.run_id"] == run_id
        assert run.data.params == {k: str(v) for k, v in _spec_fields(store.spec(run_id)).items()}
        for key in run.data.metrics:
            for metric in client.get_metric_history(run.info.run_id, key):
                read[(run_id, metric.step, key)] = metric.value
    assert sorted(names) == store.run_ids()
    _assert_equal_metrics(read, store)


def _wandb_records(path):
    """The protobuf records of a W&B offline .wandb file (a LevelDB-style log: 32 KiB blocks,
    7-byte chunk headers crc32/length/type, after the 7-byte ':W&B' file header), decoded with
    wandb's own Record message."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_runs_read_back_exactly(store, tmp_path):
    pytest.importorskip("wandb")
    from lmech.report.export import _spec_fields

    export_store(store, "wandb", tmp_path / "wb")
    files = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    read, seen = {}, []
    for path in files:
        records = _wandb_records(path)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        run_id = run.run_id
        seen.append(run_id)
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert {k: v for k, v in config.items() if k != "_wandb"} == _spec_fields(store.spec(run_id))
        for record in records:
            if record.WhichOneof("record_type") != "history":
                continue
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    read[(run_id, record.history.step.num, key)] = json.loads(item.value_json, parse_int=float)  # -0
    assert sorted(seen) == store.run_ids()
    _assert_equal_metrics(read, store)


@pytest.mark.parametrize("fmt, modules", [("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
                                          ("mlflow", ("mlflow",)), ("wandb", ("wandb",))])
def test_a_missing_library_names_the_extra(store, tmp_path, monkeypatch, fmt, modules):
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.setitem(sys.modules, name, None)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)
    with pytest.raises(InputError, match=rf"install 'lmech\[{fmt}\]'"):
        export_store(store, fmt, tmp_path / fmt)


def test_the_comparison_can_fail(store):
    """Negative control: one value off by one ulp, or one row missing, fails the comparison."""
    read = _metrics(store)
    key = next(k for k, v in read.items() if math.isfinite(v) and v != 0)
    with pytest.raises(AssertionError):
        _assert_equal_metrics({**read, key: math.nextafter(read[key], math.inf)}, store)
    with pytest.raises(AssertionError):
        _assert_equal_metrics({k: v for k, v in read.items() if k != key}, store)

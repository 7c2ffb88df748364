"""Store.query's `runs` table joins metrics to the hyperparameters that produced them."""

from lmech.engine import execute
from lmech.spec import SweepSpec, expand_sweep
from lmech.store import Store


def test_metrics_join_runs_on_swept_fields(tmp_path):
    sweep = SweepSpec.model_validate({"name": "lr-scan", "model": {"width": 8, "depth": 1}, "steps": 6,
                                      "observe": {"loss": {"every": 3}},
                                      "sweep": {"optimizer.lr": [0.05, 0.2], "seed": [0, 1]}})
    store = Store(tmp_path)
    execute(expand_sweep(sweep), store, sweep=sweep.name)
    rows = store.query("select optimizer_lr, count(distinct run_id), avg(value) from metrics join runs using (run_id) "
                       "where name = 'loss/train' and step = 6 group by optimizer_lr order by optimizer_lr")
    assert [(lr, n) for lr, n, _ in rows] == [(0.05, 2), (0.2, 2)]
    # the joined value is the stored one: recompute one group's mean from the runs themselves
    direct = [store.series(r, "loss/train")[1][-1] for (r,) in
              store.query("select run_id from runs where optimizer_lr = 0.2")]
    assert abs(rows[1][2] - sum(direct) / len(direct)) < 1e-12
    info = store.query("select distinct sweep, status, model_width, lmech_version from runs")
    assert info == [("lr-scan", "completed", 8.0, __import__("lmech").__version__)]
    finals = store.query("select count(*) from runs where final_loss_train is not null")
    assert finals == [(4,)]

"""critical_batch_forecast on linear regression, whose B_simple is known in closed form."""

import torch

from lmech.instruments.critical_batch_forecast import critical_batch_forecast


def _setup(n=20000, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = (x @ w)[:, None]
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.zeros(1, d, dtype=torch.float64))
    per = -(y[:, 0])[:, None] * x  # per-example gradient of 0.5 (x.v - y)^2 at v = 0
    mean = per.mean(0)
    exact = float((per - mean).pow(2).sum(1).mean() / mean.pow(2).sum())
    return model, (x, y), exact


def test_forecast_equals_b_simple_and_its_interval_covers_the_exact_value():
    model, data, exact = _setup()
    loss = lambda out, y: 0.5 * (out - y).pow(2).mean()  # noqa: E731
    before = model.weight.detach().clone()
    r = critical_batch_forecast(model, loss, data, num_pairs=200, seed=3)
    assert torch.equal(model.weight, before)
    assert r.b_crit == r.b_simple and r.resolved
    assert r.b_crit_lo <= exact <= r.b_crit_hi  # ~95% interval at a fixed seed
    assert abs(r.b_simple - exact) / exact < 0.15  # 200 pairs: a few standard errors
    assert not (r.b_crit_lo <= 3 * exact <= r.b_crit_hi)  # negative control: a 3x wrong value is excluded

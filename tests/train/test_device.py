"""`device:` in run specs and on instruments: auto resolves to what exists, the numbers do not depend
on the spelling, and CUDA asked for where there is none is one line (the CUDA path itself is
exercised by bench/cuda_smoke.py on a GPU machine, never in these tests)."""

import pytest
import torch
from pydantic import ValidationError

from lmech.errors import InputError
from lmech.instruments.losses import named_loss
from lmech.observables import measure
from lmech.spec import RunSpec
from lmech.train import train_ensemble

SPEC = {"model": {"width": 8, "depth": 1}, "steps": 5, "observe": {"loss": {"every": 5}}}


def test_auto_trains_where_torch_can_and_equals_the_explicit_device():
    here = "cuda" if torch.cuda.is_available() else "cpu"
    auto = train_ensemble([RunSpec.model_validate({**SPEC, "device": "auto"})])[0]
    explicit = train_ensemble([RunSpec.model_validate({**SPEC, "device": here})])[0]
    assert auto.device.startswith(here) and auto.rows == explicit.rows
    assert all(p.device.type == "cpu" for p in auto.final_params.values())  # stored from the CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
def test_cuda_without_cuda_is_one_line():
    with pytest.raises(InputError, match="no CUDA device"):
        train_ensemble([RunSpec.model_validate({**SPEC, "device": "cuda"})])
    model = torch.nn.Linear(3, 2)
    batch = (torch.randn(6, 3), torch.randint(0, 2, (6,)))
    with pytest.raises(InputError, match="no CUDA device"):
        measure(model, named_loss("cross_entropy"), batch, "sharpness", device="cuda")
    with pytest.raises(ValidationError):
        RunSpec.model_validate({**SPEC, "device": "gpu"})


def test_instrument_device_auto_equals_in_place():
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (12,), generator=g))
    loss = named_loss("cross_entropy")
    auto = measure(model, loss, batch, "sharpness,hessian_trace", device="auto", hessian_trace={"num_probes": 4})
    plain = measure(model, loss, batch, "sharpness,hessian_trace", hessian_trace={"num_probes": 4})
    tolerance = 0.0 if not torch.cuda.is_available() else 1e-10  # the same CPU ops; GPU rounding otherwise
    for name, value in plain.rows().items():
        assert abs(auto.rows()[name] - value) <= tolerance * max(1.0, abs(value)), name

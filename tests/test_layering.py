"""Imports flow one way (DESIGN.md): tasks, models -> train -> observables -> engine -> phenomena
-> report -> cli; theory depends on no other lmech layer. Each layer is imported in a fresh
interpreter and the lmech modules it pulled in are checked."""

import json
import subprocess
import sys

import pytest

ORDER = ["tasks", "models", "train", "observables", "engine", "phenomena", "report", "cli"]
LEAVES = {"lmech", "lmech.errors", "lmech.seeding", "lmech.spec"}


def loaded_layers(module: str) -> set[str]:
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('lmech.') and m.count('.') >= 1})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout))


def _forbidden(layer: str) -> set[str]:
    """Layers `layer` must not load: every later layer; tasks and models not each other;
    theory is only for phenomena and later, and itself loads no other layer."""
    if layer == "theory":
        return set(ORDER)
    later = set(ORDER[ORDER.index(layer) + 1:])
    if layer == "tasks":
        later.add("models")
    if layer in ("tasks", "models", "train"):
        later.add("theory")
    return later


@pytest.mark.parametrize("layer", ORDER[:-1] + ["theory"])
def test_layer_does_not_import_later_layers(layer):
    loaded = loaded_layers(f"lmech.{layer}")
    assert not (loaded & _forbidden(layer)), f"lmech.{layer} loads {sorted(loaded & _forbidden(layer))}"


def test_the_check_can_fail():
    """Meta-test: the detector does see a real dependency (engine loads train)."""
    loaded = loaded_layers("lmech.engine")
    assert "train" in loaded and loaded & _forbidden("train")

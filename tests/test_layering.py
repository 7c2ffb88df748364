"""Imports flow one way (DESIGN.md): tasks, models -> train -> observables -> engine -> compare -> forecast -> phenomena
-> report -> cli; instruments, theory and store depend on no other lmech layer (but errors and
seeding). Each package is imported in a fresh interpreter and the lmech packages it pulled in are
checked; a meta-test inserts an upward import into a copy of every package and sees it caught."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmech

ORDER = ["tasks", "models", "train", "observables", "engine", "compare", "forecast", "phenomena", "report", "cli"]
INDEPENDENT = ["instruments", "theory", "store"]  # used from above, import no other layer
PACKAGES = ORDER + INDEPENDENT
LEAVES = {"errors", "seeding", "spec"}  # modules, not layers; spec holds the task and model specs


def loaded_layers(module: str, path: str | None = None) -> set[str]:
    """The lmech packages (first component after `lmech.`) loaded by importing `module`."""
    redirect = "" if path is None else (  # import lmech from `path`, not the editable install
        f"sys.path.insert(0, {path!r}); "
        "sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith('__editable__')]; ")
    code = (f"import sys, json; {redirect}import {module}; "
            "assert lmech.__file__.startswith(" + repr(path or "") + "); "
            "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('lmech.') and m.count('.') >= 1})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True)
    return set(json.loads(out.stdout)) - LEAVES


def forbidden(layer: str) -> set[str]:
    """Packages `layer` must not load."""
    if layer in INDEPENDENT:
        return set(PACKAGES) - {layer}
    later = set(ORDER[ORDER.index(layer) + 1:])
    if layer == "tasks":
        later.add("models")
    if layer in ("tasks", "models", "train"):
        later |= {"theory", "store"}
    return later


@pytest.mark.parametrize("layer", PACKAGES)
def test_layer_does_not_import_later_layers(layer):
    loaded = loaded_layers(f"lmech.{layer}")
    assert not (loaded & forbidden(layer)), f"lmech.{layer} loads {sorted(loaded & forbidden(layer))}"


@pytest.mark.parametrize("layer", [p for p in PACKAGES if p != "cli"])  # nothing lies above cli
def test_the_check_fails_on_an_inserted_upward_import(layer, tmp_path):
    """Meta-test: a copy of lmech whose `layer` imports a forbidden package is caught."""
    target = sorted(forbidden(layer) - {"cli"})[0] if forbidden(layer) - {"cli"} else "cli"  # cli: slow import
    copy = tmp_path / "lmech"
    shutil.copytree(Path(lmech.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / layer / "__init__.py"
    init.write_text(init.read_text() + f"\nimport lmech.{target}  # inserted upward import\n")
    loaded = loaded_layers(f"lmech.{layer}", str(tmp_path))
    assert target in loaded & forbidden(layer), (layer, target, loaded)

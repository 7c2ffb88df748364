"""A user's spec text (a YAML file or a `--set` value) into a plain tree, refusing hostile input.

One job: read YAML within limits that make loading cheap and safe, before anything is built:
at most `MAX_SPEC_BYTES` of text, nesting at most `MAX_DEPTH` deep (PyYAML composes
recursively, so a deeper document would be a RecursionError) and at most `MAX_NODES` values
once aliases are expanded (a few hundred bytes of nested aliases expand to billions: the
"billion laughs" bomb). It ignores what the fields mean; pydantic validates those.

Exponent notation that YAML 1.1 leaves a string (`1e-3`, `1.5e3`, no dot or no exponent sign)
reads as the number people mean: a whole-number mantissa with a non-negative exponent (`1e3`)
as an int, so it can fill an integer field; anything else as a float.
"""

from __future__ import annotations

import re
import reprlib
from pathlib import Path

import yaml

from lmech.errors import InputError

__all__ = ["MAX_SPEC_BYTES", "MAX_DEPTH", "MAX_NODES", "load_spec_text", "read_spec_file", "excerpt", "shorten"]

MAX_SPEC_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 32
MAX_NODES = 100_000

_EXPONENT_TAG = "tag:lmech,2025:exponent"
_EXPONENT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")
_WHOLE = re.compile(r"^([-+]?[0-9]+)[eE]\+?([0-9]+)$")


class _SpecLoader(yaml.SafeLoader):
    """yaml.SafeLoader plus exponent notation as numbers (see the module docstring)."""


def _exponent_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | float:
    text = loader.construct_scalar(node)
    whole = _WHOLE.match(text)
    if whole and int(whole.group(2)) <= 30:  # 1e3 -> 1000; a larger exponent stays a float (maybe inf)
        return int(whole.group(1)) * 10 ** int(whole.group(2))
    return float(text)


_SpecLoader.add_implicit_resolver(_EXPONENT_TAG, _EXPONENT, list("-+0123456789."))
_SpecLoader.add_constructor(_EXPONENT_TAG, _exponent_number)

def excerpt(value: object, limit: int = 60) -> str:
    """A short repr of (part of) a user's input for an error message: at most `limit` characters
    (reprlib: never the whole repr of a large value)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, 40, 40
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = 4
    return shorten(short.repr(value), limit)


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_shape(text: str, where: str) -> None:
    """Walk the parse events (iterative, cheap) and refuse deep nesting and alias bombs."""
    stack: list[list] = []  # [anchor, values so far] per open collection
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    total = 0
    for event in yaml.parse(text, Loader=_SpecLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise InputError(f"{where} nests deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, count = stack.pop()
            if anchor is not None:
                sizes[anchor] = count
        elif isinstance(event, yaml.ScalarEvent):
            count = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            count = sizes.get(event.anchor, 1)  # an undefined alias is the composer's error
        else:
            continue
        if stack:
            stack[-1][1] += count
        total += count
        if total > MAX_NODES or (stack and stack[-1][1] > MAX_NODES):
            raise InputError(f"{where} holds more than {MAX_NODES} values once its YAML aliases are expanded")


def load_spec_text(text: str, where: str) -> object:
    """The YAML value of `text` (None for an empty document); `where` names it in errors.

    Raises InputError (one line) for text past the limits or YAML that does not parse.
    """
    if len(text) > MAX_SPEC_BYTES:
        raise InputError(f"{where} is longer than the limit of {MAX_SPEC_BYTES} characters")
    try:
        _check_shape(text, where)
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{where} is not valid YAML: {shorten(first, 200)}") from None
    except InputError:
        raise
    except (ValueError, OverflowError) as error:  # a constructor's: an int of 5,000 digits, a bad date
        raise InputError(f"{where} holds a value YAML cannot read: {shorten(str(error), 200)}") from None


def read_spec_file(path: Path) -> dict:
    """The mapping of spec fields in the YAML file `path`, read within the limits above.

    Raises InputError (one line) for a missing, oversized, non-UTF-8, empty or malformed file, or
    one that holds something other than a mapping.
    """
    if not path.is_file():
        raise InputError(f"spec file not found: {path}")
    with path.open("rb") as handle:
        data = handle.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise InputError(f"{path} is larger than the limit of {MAX_SPEC_BYTES // 1024} KiB for a spec file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text (byte {error.start})") from None
    tree = load_spec_text(text, str(path))
    if tree is None:
        raise InputError(f"{path} is empty: write the spec fields to change (`lmech sweep` without a file "
                         "trains the default run)")
    if not isinstance(tree, dict):
        raise InputError(f"{path} must hold a mapping of spec fields, not a {type(tree).__name__}")
    return tree

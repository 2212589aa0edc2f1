"""The training flags of `cnnlab train` and `cnnlab lr-find`, generated from the fields declared with `option` in
Recipe (cnnlab.models.recipe) and RunConfig (cnnlab.training.config): a field declared there is a flag here, with
its type, choices, help and metavar, so that adding a recipe field is one edit. An unset flag is None: the named
recipe's value (or the run's default) stays."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from cnnlab.models.recipe import Recipe
from cnnlab.training.config import RunConfig

POSITIONAL = ("dataset",)  # make_config's own arguments, not among its **options


def declared(kind) -> list[dataclasses.Field]:
    """The fields of the dataclass `kind` that are flags: those declared with `option` (they carry a help text)."""
    return [f for f in dataclasses.fields(kind) if "help" in f.metadata]


def flag_name(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def add_flags(parser, kind, defaults: dict | None = None) -> None:
    """One flag for each declared field of `kind`, on `parser` (or an argument group); booleans as --x/--no-x.
    With `defaults` (field name -> the value a command uses when unset), only those fields, their help saying so."""
    hints = typing.get_type_hints(kind)
    for field in declared(kind):
        if defaults is not None and field.name not in defaults:
            continue
        meta = dict(field.metadata)
        if defaults is not None:
            meta["help"] += f" (default: {defaults[field.name]})"
        kind_of_value = value_type(hints[field.name])
        if kind_of_value is bool:
            parser.add_argument(
                flag_name(field), action=argparse.BooleanOptionalAction, default=None, help=meta["help"]
            )
            continue
        parser.add_argument(
            flag_name(field),
            type=kind_of_value,
            choices=[c for c in meta["choices"] if c] or None,  # "" is a field's "off": not a choice to type
            metavar=meta["metavar"],
            default=None,
            help=meta["help"],
        )


def value_type(hint):
    """What a flag's text is read as: the declared type, without its None (`float | None` -> float)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint not in (bool, int, float, str):
        raise TypeError(f"a flag reads bool, int, float or str, not {hint}: declare the field without `option`")
    return hint


def given(args) -> dict:
    """The training flags given on the command line, by field name (make_config's own arguments aside)."""
    names = [f.name for kind in (RunConfig, Recipe) for f in declared(kind) if f.name not in POSITIONAL]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}

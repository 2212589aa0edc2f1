"""Code the user names on the command line: `cnnlab train nets.py:Net`, `--trust nets.py`.

The only way Python code other than cnnlab's enters a command: a file the user types. A run folder's record names
its network's class, but that name is only compared with the classes of the files given here, never imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from cnnlab.errors import CnnlabError

TRUST_HELP = (
    "a Python file defining your own network's class, for runs of it (cnnlab never imports code a run "
    "folder names); repeat for several files"
)


def add_trust(parser) -> None:
    parser.add_argument("--trust", action="append", default=[], metavar="FILE.py", help=TRUST_HELP)


def is_file_class(name: str | None) -> bool:
    """`nets.py:Net`: a class in a file, rather than a registered model's name."""
    return bool(name) and ":" in name and name.partition(":")[0].endswith(".py")


def class_from(spec: str):
    """The nn.Module class `FILE.py:Class` names, imported from that file."""
    path, _, name = spec.partition(":")
    classes = classes_in(path)
    if name not in classes:
        raise CnnlabError(f"{path} defines no nn.Module class {name!r}; it defines: {', '.join(classes) or 'none'}")
    return classes[name]


def trusted_classes(paths: list[str]) -> dict:
    """Every nn.Module class defined in the given files, by qualified name (the first file wins a clash)."""
    found: dict = {}
    for path in paths:
        for name, cls in classes_in(path).items():
            found.setdefault(name, cls)
    return found


def classes_in(path) -> dict:
    """Import the file the user named and return the nn.Module classes defined in it."""
    from torch import nn

    path = Path(path)
    if path.suffix != ".py" or not path.is_file():
        raise CnnlabError(f"{path}: no such Python file (give the .py file that defines your network)")
    # named as the file, as `import nets` would (unless that name is taken): the run record names the class by it
    module_name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else f"cnnlab_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up here
    sys.path.insert(0, str(path.resolve().parent))  # its own imports of files beside it
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's code: say where it failed, in a line
        raise CnnlabError(f"{path}: importing it failed ({error.__class__.__name__}: {error})") from None
    finally:
        sys.path.pop(0)
    return {
        cls.__qualname__: cls
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == module_name
    }


def open_predictor(args):
    """The run's Predictor, a learner's own network built from the class a --trust file defines."""
    from cnnlab.predict import Predictor
    from cnnlab.training.record import RunRecord

    own = RunRecord.load(args.run).model.own
    model = trusted_classes(args.trust).get(own.qualname) if own and args.trust else None
    return Predictor.from_run(args.run, args.weights, model)


def own_summary(args) -> str | None:
    """`cnnlab summary` of a run of a learner's own network (its class from --trust); None for registry models."""
    from cnnlab.models.summary import summary_table

    if not Path(args.model).is_dir():
        return None
    predictor = open_predictor(argparse.Namespace(run=args.model, weights="best", trust=args.trust))
    if not predictor.record.model.own:
        return None
    return summary_table(predictor.model, predictor.input_shape)

"""The training flags are generated from Recipe's and RunConfig's declarations: every field is a flag whose value
reaches the run's config, and the command line reads that vocabulary without importing torch."""

import dataclasses
import subprocess
import sys
import typing

import pytest

from cnnlab.cli import build_parser, main
from cnnlab.cli.flags import declared, value_type
from cnnlab.cli.training import _options, _recipe
from cnnlab.models.recipe import Recipe
from cnnlab.training.config import RunConfig, make_config

# what a field's sample value needs beside it to be a valid config
NEEDS = {
    "freeze": ["--weights", "w.pth"],
    "pretrained_lr_scale": ["--weights", "w.pth"],
    "adversarial": ["--adv-eps", "0.1"],
}
# free-text fields: a valid value that is not the default (a new one needs its line here)
TEXTS = {"augment": "flip", "corrupt": "gaussian", "weights": "w.pth", "device": "cpu"}


def help_of(capsys, command: str) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


def sample(kind, field: dataclasses.Field, now) -> tuple[list[str], object]:
    """Command-line words that set `field` to a valid value other than `now` (its value without them), and that
    value as the config should hold it."""
    flag = "--" + field.name.replace("_", "-")
    wanted = value_type(typing.get_type_hints(kind)[field.name])
    choices = [c for c in field.metadata["choices"] if c and c != now]
    if wanted is bool:
        return [flag if not now else "--no-" + flag[2:]], not now
    if choices:
        return [flag, choices[0]], choices[0]
    if wanted is int:
        return [flag, str((now or 0) + 1)], (now or 0) + 1
    if wanted is float:
        value = 0.25 if now == 0.5 else 0.5
        return [flag, str(value)], value
    assert field.name in TEXTS, f"give {flag} a sample value in TEXTS"
    return [flag, TEXTS[field.name]], TEXTS[field.name]


def config_of(argv: list[str]) -> RunConfig:
    """As `cnnlab train` and `cnnlab lr-find` make it, without training."""
    args = build_parser().parse_args(argv)
    return make_config(args.model, args.dataset, _recipe(args), **_options(args))


@pytest.mark.parametrize("field", dataclasses.fields(Recipe), ids=lambda f: f.name)
def test_every_recipe_field_is_a_flag_that_reaches_the_config(field, capsys):
    flag = "--" + field.name.replace("_", "-")
    assert field in declared(Recipe), f"declare Recipe.{field.name} with option(help=...)"
    for command in ("train", "lr-find"):
        assert f" {flag}" in help_of(capsys, command), f"cnnlab {command} --help lacks {flag}"
    base = ["train", "mlp", "--dataset", "mnist"]
    now = getattr(config_of(base + NEEDS.get(field.name, [])).recipe, field.name)
    words, value = sample(Recipe, field, now)
    config = config_of(base + words + NEEDS.get(field.name, []))
    assert getattr(config.recipe, field.name) == value, f"{' '.join(words)} did not reach the recipe"


@pytest.mark.parametrize("field", declared(RunConfig), ids=lambda f: f.name)
def test_every_declared_run_field_is_a_flag_that_reaches_the_config(field, capsys, tmp_path):
    flag = "--" + field.name.replace("_", "-")
    assert f" {flag}" in help_of(capsys, "train")
    base = ["train", "mlp", "--dataset", "mnist"] if field.name != "dataset" else ["train", "mlp"]
    now = getattr(config_of(base), field.name)
    if field.name == "data_root":  # kept absolute, so a resume from another folder finds it too
        words, value = [flag, str(tmp_path)], str(tmp_path.resolve())
    else:
        words, value = sample(RunConfig, field, now)
    assert getattr(config_of(base + words), field.name) == value


def test_unset_flags_leave_the_recipe_as_it_is():
    assert config_of(["train", "mlp", "--dataset", "mnist"]).recipe == make_config("mlp", "mnist").recipe


def test_the_new_sgd_flags_shape_the_optimizer():
    recipe = config_of(
        ["train", "mlp", "--dataset", "mnist", "--optimizer", "sgd", "--momentum", "0.8", "--nesterov", "--warmup", "0"]
    ).recipe
    assert (recipe.optimizer, recipe.momentum, recipe.nesterov, recipe.warmup) == ("sgd", 0.8, True, 0.0)
    assert recipe.lr_at(1, 100, 10) == pytest.approx(recipe.lr)  # no warm-up: the peak rate after one step
    assert recipe.replace(warmup=0.2).lr_at(1, 100, 10) < recipe.lr / 2


def test_nesterov_without_momentum_is_refused_before_training(capsys):
    code = main(["train", "mlp", "--dataset", "mnist", "--optimizer", "sgd", "--momentum", "0", "--nesterov"])
    assert code == 2
    assert "nesterov momentum needs a momentum above 0" in capsys.readouterr().err


def test_a_bad_choice_is_one_line_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "mlp", "--optimizer", "rmsprop"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--optimizer" in err and "'sgd', 'adam', 'adamw'" in err and len(err.splitlines()) == 1


TORCH_FREE = {
    "import cnnlab.cli": "import cnnlab.cli",
    "the parser": "from cnnlab.cli import build_parser\nbuild_parser()",
    "cnnlab --help": "from cnnlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "cnnlab train --help": "from cnnlab.cli import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n"
    "    pass",
    "cnnlab filter --help": "from cnnlab.cli import main\ntry:\n    main(['filter', '--help'])\nexcept SystemExit:\n"
    "    pass",
    "the registries": "from cnnlab.data import DATASETS\nfrom cnnlab.data.names import DOWNLOADABLE\n"
    "from cnnlab.models import Recipe\nfrom cnnlab.models.recipe import ADVERSARIAL_METHODS, ATTACKS, FREEZES, "
    "OPTIMIZERS, SCHEDULES\nfrom cnnlab.training.config import PRECISIONS, RunConfig\nimport cnnlab.cli.flags",
}


@pytest.mark.parametrize("what", TORCH_FREE)
def test_the_command_line_and_its_vocabulary_import_no_torch(what):
    code = TORCH_FREE[what] + "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_torch_free_data_set_names_each_have_a_loader():
    from cnnlab.data.datasets import LOADERS
    from cnnlab.data.names import DATASETS, DOWNLOADABLE

    assert list(LOADERS) == list(DATASETS) and set(DOWNLOADABLE) < set(DATASETS)


def test_the_lazy_packages_still_give_every_name():
    import cnnlab.data
    import cnnlab.models

    assert "mlp" in cnnlab.models.get_spec("mlp").name and "lesson-cnn" in cnnlab.models.MODELS
    assert all(getattr(cnnlab.data, name) is not None for name in cnnlab.data.__all__)
    with pytest.raises(AttributeError):
        cnnlab.models.not_a_name  # noqa: B018

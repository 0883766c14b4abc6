"""Settings as data: config dataclass fields -> one name each in profiles, the CLI and config.json."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from rdlens import options, systems
from rdlens.cli import build_parser, main
from rdlens.errors import ConfigError
from rdlens.reproduce import ROWS, load_profile, plan_row
from rdlens.rundir import to_jsonable


def test_field_docstrings_become_option_help():
    from rdlens.grayscott import GrayScott

    docs = options.field_docs(GrayScott)
    assert docs["k"] == "kill rate" and docs["size"] == "grid points per side, N"


def test_nested_fields_flatten_to_unique_names_with_hidden_and_renamed_paths():
    ddpm = systems.get("ddpm")
    names = [o.name for o in ddpm.options]
    assert len(names) == len(set(names))
    assert "schedule" in names and "in_channels" not in names and "image_size" not in names
    assert ddpm.option("schedule").path == ("schedule", "kind")
    assert ddpm.option("channels").path == ("unet", "channels") and ddpm.option("channels").kind == "ints"
    lstm = systems.get("lstm")
    assert lstm.option("n_sequences").path == ("data", "n_sequences")
    assert [o.path for o in lstm.options if o.name == "seed"] == [("seed",)]  # data.seed is derived
    assert systems.get("rd").option("F").path == ("model", "F")


@pytest.mark.parametrize("system, key, value, fragment", [
    ("ddpm", "lr", "x", "lr must be a number, got 'x'"),
    ("ddpm", "channels", ["a"], "channels must be an integer, got 'a'"),
    ("ddpm", "channels", [1.5], "channels must be an integer, got 1.5"),
    ("ddpm", "ema", "x", "ema must be a number"),
    ("lstm", "test_fraction", "x", "test_fraction must be a number"),
    ("lstm", "steps", True, "steps must be an integer, got True"),
    ("rd", "residual", "no", "residual must be true or false, got 'no'"),
    ("ddpm", "grad_clip", float("nan"), "grad_clip must be a finite number, got nan"),
    ("lstm", "dataset", "weather", "dataset must be one of sine, lorenz, vanderpol"),
    ("lstm", "freq_range", [1.0], "freq_range must have 2 items"),
])
def test_profile_values_of_the_wrong_type_are_refused_with_name_and_value(system, key, value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        options.check_values(systems.get(system).options, {key: value}, "profile p")


def test_integers_are_accepted_for_numbers_and_lists_for_tuples():
    ddpm = systems.get("ddpm").options
    got = options.check_values(ddpm, {"lr": 1, "channels": [8, 16], "steps": 3.0}, "p")
    assert got == {"lr": 1.0, "channels": (8, 16), "steps": 3} and isinstance(got["lr"], float)


@pytest.mark.parametrize("name", ["rd", "lstm", "ddpm"])
def test_config_json_round_trips_to_the_same_config(name):
    system = systems.get(name)
    values = {"rd": {"F": 0.0545, "steps": 10}, "lstm": {"setting": "paper", "freq_range": (0.1, 0.2)},
              "ddpm": {"channels": (8, 16), "T": 20, "schedule": "cosine"}}[name]
    config = system.build(values)
    saved = json.loads(json.dumps(to_jsonable({"system": name, **asdict(config)})))
    assert system.from_json(saved) == config


def test_every_option_is_a_profile_key_a_cli_option_and_a_config_json_path():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    for system in systems.all_systems():
        flags = {s for a in subparsers[system.name]._actions for s in a.option_strings}
        config = to_jsonable(asdict(system.build({})))
        for o in system.options:
            assert o.flag in flags, (system.name, o.flag)
            node = config
            for p in o.path:
                node = node[p]
            if node is not None:  # the saved default passes its own option's type check
                options.check_values(system.options, {o.name: node}, "config.json")


def test_the_stripe_row_can_take_the_public_codes_F(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[rows.rd-stripe]\nF = 0.0545\n[rd]\nsteps = 100\n")
    profile = load_profile(str(path))
    plan = plan_row(next(r for r in ROWS if r.id == "rd-stripe"), profile, 0, None)
    assert plan.config.model.F == 0.0545 and plan.config.steps == 100 and plan.data == "F = 0.0545, k = 0.062"


def test_resume_refuses_other_settings_instead_of_ignoring_them(tmp_path, capsys):
    assert main(["lstm", "--resume", str(tmp_path), "--steps", "5", "--quiet"]) == 2
    assert "drop --steps" in capsys.readouterr().err


def test_version_and_help_import_neither_torch_nor_numba():
    code = ("import sys, contextlib, io\nfrom rdlens.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for argv in (['--version'], ['--help']):\n"
            "        try:\n            main(argv)\n        except SystemExit:\n            pass\n"
            "print(sorted(m for m in ('torch', 'numba', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_registering_a_second_system_under_a_taken_name_is_refused():
    class Other(systems.System):
        name = "rd"

    with pytest.raises(ValueError, match="already registered"):
        systems.register(Other())
    with pytest.raises(ConfigError, match="unknown system 'nope'"):
        systems.get("nope")


def test_a_nested_config_given_in_part_keeps_the_parents_defaults():
    from rdlens.sweep import OPTION_HIDDEN, SweepConfig

    opts = options.flatten(SweepConfig, hidden=OPTION_HIDDEN)
    by_name = {o.name: o for o in opts}
    assert by_name["size"].default == 64 and by_name["length"].default == 0.64  # the sweep's, not GrayScott's
    cfg = options.from_dict(SweepConfig, options.nest(opts, {"size": 32}))
    assert cfg.model.size == 32 and cfg.model.length == 0.64  # the length is not reset to GrayScott's 2.0

"""Reading an experiment config from the command line: `--config=FILE[:variants]` and any
`--config.FIELD=VALUE` overrides, through ml_collections' config flag, with every way that can
fail (no such file, an unknown variant, an override naming no field or a value of the wrong type)
turned into a one-line InputError. covseg_jax.main parses its flags with `parse`;
covseg_jax.sweep (checking a sweep's runs up front) and covseg_jax.bench use `load`, so all three
read a config the same way.
"""
from absl import flags
from ml_collections import config_flags

from covseg_jax.errors import InputError


def parse(flag_values, argv):
  """flag_values(argv) (the remaining arguments), with a bad flag, config file, variant or
  override raised as InputError. A --config flag is read here, not at its first use."""
  try:
    remaining = flag_values(argv)
    if "config" in flag_values and flag_values["config"].value is not None:
      flag_values.config.keys()
  except OSError:  # ml_collections defers an unreadable file's error to the config's first use:
    # the line above, or applying the first override.
    raise InputError(f"no config file {_config_path(argv)!r}") from None
  except flags.Error as e:
    raise InputError(_one_line(str(e))) from None
  except (KeyError, AttributeError, IndexError) as e:  # An override of a field not there.
    while e.args and isinstance(e.args[0], Exception):  # AttributeError(KeyError(...)).
      e = e.args[0]
    first, *rest = str(e.args[0] if e.args else e).splitlines()
    if first.startswith("'"):  # The field's name, then perhaps "Did you mean ...?".
      first = f"the config has no field {first}."
    raise InputError(" ".join(["--config override:", first, *rest])) from None
  return remaining


def _config_path(argv):
  """The file of the last --config=FILE[:variants] (or `--config FILE...`) in argv."""
  path = ""
  for i, arg in enumerate(argv):
    name, equals, value = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name == "config":
      path = value if equals else (argv[i + 1] if i + 1 < len(argv) else "")
  return path.split(":", 1)[0]


def load(config_arg, overrides=()):
  """The config `python -m covseg_jax.main --config=CONFIG_ARG *OVERRIDES` trains."""
  argv = ["covseg_jax", f"--config={config_arg}", *overrides]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=flag_values, lock_config=True,
                                  sys_argv=argv)  # Where it looks for the overrides.
  parse(flag_values, argv)
  return flag_values.config


def flatten(config, prefix=""):
  """{'train.learning_rate': 0.001, ...}: the leaves of a config (or of any nested mapping)
  under their dotted names."""
  flat = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _one_line(message):
  """ml_collections puts the config file's traceback into its error: keep the flag and the
  exception's own line."""
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  if len(lines) > 1 and any(line.startswith("Traceback") for line in lines):
    flag = lines[0].removesuffix("Error whilst parsing config file:").strip()
    return f"{flag} {lines[-1]}"
  return " ".join(lines)

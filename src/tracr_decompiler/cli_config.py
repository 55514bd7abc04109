"""Command-line flags derived from the config dataclasses, so each default and help text has one home.

A config field declares its default and a one-line help where it is defined
(`setting(6000, "optimizer steps")`); the CLI adds one `--kebab-case` flag per
exposed field, typed from the field's annotation, and builds the dataclass
back from, lowest first: the dataclass defaults, a `--config file.json`
(an object keyed by field name, e.g. a run's own train_config.json), and the
flags given on the command line. Flags default to argparse.SUPPRESS, so only
the ones actually typed override the file. The file is read with a bounded
read and json (never evaluated), and its values pass the same range checks
as the flags'.

This module imports only the standard library and leaf modules (errors,
files), so config modules at any layer may import `setting` from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from typing import Any, Callable, Mapping, Sequence

from tracr_decompiler import errors, files

MAX_CONFIG_BYTES = 1 << 20  # a --config file; ours are under 1 KB
_METAVAR = {int: "N", float: "X", str: "TEXT", tuple: "A,B,...", dict: "JSON"}


def setting(default: Any, help: str, choices: tuple | None = None) -> Any:
  """A dataclass field with its one-line help (and allowed values), read by the CLI and --help."""
  metadata: dict[str, Any] = {"help": help}
  if choices is not None:
    metadata["choices"] = choices
  return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Flag:
  """How one field appears on the command line; everything not given here comes from the field."""
  aliases: tuple[str, ...] = ()  # older flag names that keep working, e.g. --layers for n_encoder_layers
  type: Callable[[str], Any] | None = None  # a parser that also checks the range (limits.py)
  help: str | None = None  # for classes whose module does not carry help metadata
  choices: tuple | None = None
  required: bool = False  # no default on the command line: the flag or the --config file must give it
  metavar: str | None = None


@dataclasses.dataclass(frozen=True)
class Section:
  """The fields of one dataclass that a subcommand exposes, with per-field overrides."""
  cls: type
  fields: Mapping[str, Flag]  # field name -> how it is shown; fields not listed are neither flags nor file keys
  title: str = ""

  def spec(self, name: str) -> _Spec:
    field = {f.name: f for f in dataclasses.fields(self.cls)}[name]
    flag = self.fields[name]
    hint = typing.get_type_hints(self.cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and len(args) < len(typing.get_args(hint))
    base = args[0] if optional and len(args) == 1 else hint
    base = typing.get_origin(base) or base
    if field.default is not dataclasses.MISSING:
      default = field.default
    elif field.default_factory is not dataclasses.MISSING:
      default = field.default_factory()
    else:
      default = None
    help_text = flag.help or field.metadata.get("help")
    if not help_text:
      raise ValueError(f"{self.cls.__name__}.{name} has no help text")
    return _Spec(name=name, flags=(f"--{name.replace('_', '-')}",) + flag.aliases, kind=base, optional=optional,
                 default=default, help=help_text, parse=flag.type or _parser(base),
                 choices=flag.choices or field.metadata.get("choices"), required=flag.required,
                 metavar=flag.metavar)


@dataclasses.dataclass(frozen=True)
class _Spec:
  name: str
  flags: tuple[str, ...]
  kind: Any
  optional: bool
  default: Any
  help: str
  parse: Callable[[str], Any]
  choices: tuple | None
  required: bool
  metavar: str | None


def _show(value: Any) -> str:
  if isinstance(value, tuple):
    return ",".join(map(str, value))
  if isinstance(value, dict):
    return json.dumps(value, separators=(",", ":"))
  return "none" if value is None else str(value)


def _tokens(text: str) -> tuple:
  items = [t.strip() for t in text.split(",") if t.strip()]
  return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)


def _json_object(text: str) -> dict:
  try:
    value = json.loads(text)
  except ValueError:
    raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"map\": 1.0}'") from None
  return _check_object(value)


def _check_object(value: Any) -> dict:
  """A JSON object of finite numbers (op weights): NaN would pass the dataclass's sign checks."""
  if not isinstance(value, dict):
    raise argparse.ArgumentTypeError("expected a JSON object")
  for k, v in value.items():
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      raise argparse.ArgumentTypeError(f"{k}: expected a finite number, got {v!r}")
  return value


def _finite(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  if not math.isfinite(value):
    raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
  return value


def _parser(kind: Any) -> Callable[[str], Any]:
  if kind is float:
    return _finite  # float() takes "nan" and "inf"
  if kind in (int, str):
    return kind
  if kind is tuple:
    return _tokens
  if kind is dict:
    return _json_object
  if kind is bool:
    return str  # unused: booleans are --flag / --no-flag
  raise TypeError(f"no command-line type for {kind!r}")


def add_flags(parser: argparse.ArgumentParser, sections: Sequence[Section], config: bool = True) -> None:
  """One flag per exposed field (grouped by section), and --config FILE if `config`."""
  if config:
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="JSON object of settings by field name (e.g. a run's train_config.json); "
                        "flags given here override it")
  for section in sections:
    group = parser.add_argument_group(section.title) if section.title else parser
    for name in section.fields:
      s = section.spec(name)
      shown = "required" if s.required else f"default: {_show(s.default)}"
      help_text = f"{s.help} ({shown})".replace("%", "%%")
      if s.kind is bool:
        group.add_argument(*s.flags, dest=s.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_text)
      else:
        group.add_argument(*s.flags, dest=s.name, type=s.parse, choices=s.choices, default=argparse.SUPPRESS,
                           help=help_text, metavar=s.metavar or (None if s.choices else _METAVAR.get(s.kind)))


def resolve(args: argparse.Namespace, sections: Sequence[Section]) -> list[dict[str, Any]]:
  """Each section's keyword arguments: dataclass defaults < the --config file < explicit flags."""
  specs = [[section.spec(name) for name in section.fields] for section in sections]
  by_name = {s.name: s for group in specs for s in group}
  from_file = _read_config(getattr(args, "config", None), by_name)
  missing = [s.flags[0] for s in by_name.values() if s.required and s.name not in from_file and not hasattr(args, s.name)]
  if missing:
    raise errors.UsageError(f"the following arguments are required: {', '.join(missing)} (or give them in --config)")
  out = []
  for group in specs:
    values = {}
    for s in group:
      if hasattr(args, s.name):
        values[s.name] = getattr(args, s.name)
      elif s.name in from_file:
        values[s.name] = from_file[s.name]
      elif not s.required:
        values[s.name] = s.default
    out.append(values)
  return out


def _read_config(path: str | None, specs: Mapping[str, _Spec]) -> dict[str, Any]:
  if path is None:
    return {}
  data = files.read_json(path, MAX_CONFIG_BYTES, "config file")
  if not isinstance(data, dict):
    raise errors.UsageError(f"{path}: a config file holds one JSON object of settings by field name")
  unknown = sorted(set(data) - set(specs))
  if unknown:
    raise errors.UsageError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))[:200]}"
                            f" (known: {', '.join(sorted(specs))})"[:300])
  out = {}
  for key, value in data.items():
    try:
      out[key] = _from_json(specs[key], value)
    except (argparse.ArgumentTypeError, ValueError, OverflowError) as e:  # OverflowError: a 400-digit float
      raise errors.UsageError(f"{path}: {key}: {str(e).strip()[:200] or type(e).__name__}") from None
  return out


def _from_json(s: _Spec, value: Any) -> Any:
  """A file value through the same checks as the flag's text (ranges, choices, limits)."""
  if value is None:
    if s.optional:
      return None
    raise ValueError("must not be null")
  kind = s.kind
  if kind is bool:
    if not isinstance(value, bool):
      raise ValueError(f"expected true or false, got {value!r}")
    return value
  if kind is dict:
    return _check_object(value)
  if kind is tuple:
    if not isinstance(value, list) or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value):
      raise ValueError("expected a list of integers or strings")
    text = ",".join(map(str, value))
  elif kind is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ValueError(f"expected an integer, got {value!r}")
    text = str(value)
  elif kind is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(value):  # json reads NaN, Infinity and 1e400 (inf)
      raise ValueError(f"expected a finite number, got {value!r}")
    text = repr(float(value))
  else:
    if not isinstance(value, str):
      raise ValueError(f"expected a string, got {value!r}")
    text = value
  parsed = s.parse(text)
  if s.choices is not None and parsed not in s.choices:
    raise ValueError(f"{parsed!r} is not one of {', '.join(map(str, s.choices))}")
  return parsed

"""Settings as data: a system's configuration dataclass, flattened, is its list of options.

Every field of a system's (possibly nested) frozen config dataclass becomes one
:class:`Option` with one name, used unchanged as the profile key (``steps = 600``), the
command-line option (``--steps 600``, underscores become dashes) and the key path in
``config.json``. Its help text is the field's attribute docstring (the string literal
written under the field, as cleanrl's ``tyro`` and ``simple_parsing`` read them), so a new
field documented once appears everywhere at once.

A field's allowed values are declared once, on the field (:func:`setting`: a closed set of
``choices`` or the bounds ``low`` / ``high``), and read by one validator: profile and
command-line values are checked by :meth:`Option.check` before any work starts (``lr = "x"``,
``channels = [1.5]`` or ``steps = -1`` is refused with the option's name, the value and what
it must be), ``--help`` shows the range, and a config built in Python checks itself with
:func:`validate` in its ``__post_init__`` (which keeps only the checks that relate fields).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import numbers
import textwrap
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rdlens.core.errors import MAX_SEED, ConfigError

COMMAND_LINE = "command line"
"""the ``source`` of values typed as options: errors then name the option (``--steps``)"""
FIELD = "field"
"""the ``source`` of a built config's own values (:func:`validate`): errors name the field"""
MAX_INT = 2**53
"""no integer setting may exceed this (exact in a float, and far beyond any real size)"""

KINDS = ("int", "float", "str", "bool", "ints", "floats")
"""What a value may be: one integer, float, string or boolean, or a list of integers or floats."""


@dataclass(frozen=True)
class Option:
    """One setting of a system: where it lives in the config and what it may hold."""

    name: str
    """the one name: profile key, ``--name`` on the command line (dashes for underscores)"""
    path: tuple[str, ...]
    """attribute path inside the nested config dataclass, e.g. ("model", "F")"""
    kind: str
    """one of :data:`KINDS`"""
    default: Any
    """the dataclass default (a preset may override it)"""
    help: str = ""
    """the field's attribute docstring"""
    optional: bool = False
    """None is allowed (``float | None``)"""
    length: int | None = None
    """fixed number of items for list kinds (``tuple[float, float]``), else None"""
    choices: tuple[Any, ...] | None = None
    """allowed values, if the set is closed"""
    low: float | None = None
    """smallest allowed value (of each item, for list kinds), if bounded below"""
    high: float | None = None
    """largest allowed value, if bounded above"""
    open: tuple[bool, bool] = (False, False)
    """whether ``low`` and ``high`` themselves are excluded"""
    why: str = ""
    """the reason for the range, appended to its error message"""
    label: str = ""
    """what errors of a built config call the field (default: its name)"""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        """The bounds in words: 'in [0, 1)', '>= 1', '> 0' ('' when unbounded)."""
        low, high = _number(self.low, self.kind), _number(self.high, self.kind)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.open[0] else '['}{low}, {high}{')' if self.open[1] else ']'}"
        if self.low is not None:
            return f"{'>' if self.open[0] else '>='} {low}"
        if self.high is not None:
            return f"{'<' if self.open[1] else '<='} {high}"
        return ""

    def check(self, value: Any, source: str, *, strict: bool = False) -> Any:
        """``value`` converted to this option's Python type, or a ConfigError naming it and
        what it must be (its type, choices or range).

        Accepts what TOML and argparse produce: ints for floats, lists for tuples; ``strict``
        (a built config's own value) accepts no float for an integer.
        """
        if value is None and self.optional:
            return None
        where = (self.flag if source == COMMAND_LINE else (self.label or self.path[-1]) if source == FIELD
                 else f"{source}: {self.name}")
        if self.kind in ("ints", "floats"):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where} must be a list of {self.kind[:-1]}s, got {value!r}")
            items = tuple(_scalar(self.kind[:-1], v, where, strict) for v in value)
            if self.length is not None and len(items) != self.length:
                raise ConfigError(f"{where} must have {self.length} items, got {len(items)}: {value!r}")
            for item in items:
                self._check_range(item, where, value)
            out: Any = items
        else:
            out = _scalar(self.kind, value, where, strict)
            self._check_range(out, where, value)
        if self.choices is not None and out not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return out

    def _check_range(self, x: Any, where: str, value: Any) -> None:
        if self.low is None and self.high is None:
            return
        below = self.low is not None and (x <= self.low if self.open[0] else x < self.low)
        above = self.high is not None and (x >= self.high if self.open[1] else x > self.high)
        if below or above:
            what = {"int": "an integer ", "ints": "integers ", "floats": "numbers "}.get(self.kind, "")
            why = f" ({self.why})" if self.why else ""
            raise ConfigError(f"{where} must be {what}{self.range_text()}, got {value!r}{why}")

    def describe(self) -> str:
        """What the option holds, for error messages and help: 'integer', 'list of floats' ..."""
        names = {"int": "integer", "float": "number", "str": "text", "bool": "true or false",
                 "ints": "list of integers", "floats": "list of numbers"}
        return names[self.kind] + (" or none" if self.optional else "")


def _number(x: float | None, kind: str) -> str:
    """A bound as written: an integer option's in full (4294967295), a number's short (1e-09, 0.25)."""
    if x is None:
        return ""
    return str(int(x)) if kind in ("int", "ints") else f"{x:g}"


def _scalar(kind: str, value: Any, where: str, strict: bool = False) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{where} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if kind == "int":
        if strict and not isinstance(value, numbers.Integral):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        if not isinstance(value, numbers.Integral):
            if not value.is_integer():
                raise ConfigError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        if abs(value) > MAX_INT:
            raise ConfigError(f"{where} must be an integer of magnitude at most 2^53, got {value}")
        return value if strict else int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value}")
    return value


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass: the string literal written right under a field."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    docs: dict[str, str] = {}
    stmts = getattr(body, "body", [])
    for stmt, nxt in zip(stmts, stmts[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def setting(default: Any, *, choices: Any = None, low: float | None = None, high: float | None = None,
            open: tuple[bool, bool] = (False, False), why: str = "", label: str = "",
            internal: tuple[Any, ...] = ()) -> Any:
    """A config field with its allowed values declared once: a closed set of ``choices``, or the
    bounds ``low`` / ``high`` (``open`` excludes them), with ``why`` the range is what it is.
    The command line, the help, profiles, saved configs and :func:`validate` all read them.
    ``internal`` values are valid in a built or saved config but not offered as settings (a
    study's DDPM trains on the study's own fields, ``dataset = "fields"``)."""
    meta = {**({"choices": tuple(choices)} if choices is not None else {}),
            **({"internal": tuple(internal)} if internal else {}),
            **({"low": low} if low is not None else {}), **({"high": high} if high is not None else {}),
            **({"open": open} if open != (False, False) else {}), **({"why": why} if why else {}),
            **({"label": label} if label else {})}
    return dataclasses.field(default=default, metadata=meta)


def seed_setting(default: int = 0) -> Any:
    """A seed field: an integer in [0, 2^32 - 1] (NumPy's legacy generators take 32-bit seeds)."""
    return setting(default, low=0, high=MAX_SEED)


def _declared(f: dataclasses.Field, internal: bool = False) -> dict[str, Any]:
    """The Option keywords a field declares in its metadata (see :func:`setting`); ``internal``:
    for a built or saved config, whose choices include the internal values."""
    m = f.metadata
    out = {k: m[k] for k in ("choices", "low", "high", "open", "why", "label") if k in m}
    if internal and "internal" in m:
        out["choices"] = (*out.get("choices", ()), *m["internal"])
    return out


@lru_cache(maxsize=None)
def _own_options(cls: type) -> tuple[Option, ...]:
    """One Option per non-nested field of ``cls``, with its declared values."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            continue
        kind, optional, length = _kind(hints[f.name])
        out.append(Option(f.name, (f.name,), kind, None, optional=optional, length=length, **_declared(f, True)))
    return tuple(out)


def validate(config: Any) -> None:
    """Check every field of a built config (nested configs check themselves) against its type
    and its declared choices and bounds: a ConfigError names the field, the value and what it
    must be. Call it first in ``__post_init__``."""
    for option in _own_options(type(config)):
        option.check(getattr(config, option.name), FIELD, strict=True)


def _kind(hint: Any) -> tuple[str, bool, int | None]:
    """(kind, optional, fixed length) of a field's type hint."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"unsupported option type {hint!r}")
        hint, origin = args[0], typing.get_origin(args[0])
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0]
        length = None if len(args) == 2 and args[1] is Ellipsis else len(args)
        return ("ints" if item is int else "floats"), optional, length
    names = {int: "int", float: "float", str: "str", bool: "bool"}
    if hint not in names:
        raise TypeError(f"unsupported option type {hint!r}")
    return names[hint], optional, None


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def flatten(cls: type, *, hidden: tuple[str, ...] = (), renames: dict[str, str] | None = None,
            _prefix: tuple[str, ...] = (), _defaults: Any = None, _name_prefix: str = "") -> list[Option]:
    """The options of config dataclass ``cls``, nested dataclass fields flattened in order.

    ``hidden`` lists dotted paths that are derived, not set (e.g. ``data.seed``); ``renames``
    gives a flat name to a dotted path whose field name is ambiguous (``schedule.kind`` ->
    ``schedule``). Choices and bounds come from the fields (:func:`setting`). Two options with
    one name are a programming error.

    A nested config whose field carries ``metadata={"prefix": "ddpm_", "hidden": (...),
    "renames": {...}}`` is another system's config inside this one (a study's DDPM): its
    options keep the names they have in that system, after the prefix (``ddpm_steps``), and
    its own hidden paths and renames apply, relative to it.
    """
    renames = renames or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out: list[Option] = []
    for f in dataclasses.fields(cls):
        path = (*_prefix, f.name)
        dotted = ".".join(path)
        if dotted in hidden:
            continue
        hint = hints[f.name]
        # a nested config's defaults are those of the parent's default instance, not of its class
        default = getattr(_defaults, f.name) if _defaults is not None else _default(f)
        if dataclasses.is_dataclass(hint):
            meta = f.metadata
            if "prefix" in meta:  # another system's config: its own names, after the prefix
                inner_hidden = tuple(f"{dotted}.{h}" for h in meta.get("hidden", ()))
                inner_renames = {f"{dotted}.{k}": v for k, v in meta.get("renames", {}).items()}
                out += flatten(hint, hidden=(*hidden, *inner_hidden), renames={**renames, **inner_renames},
                               _prefix=path, _defaults=default,
                               _name_prefix=_name_prefix + meta["prefix"])
            else:
                out += flatten(hint, hidden=hidden, renames=renames, _prefix=path,
                               _defaults=default, _name_prefix=_name_prefix)
            continue
        kind, optional, length = _kind(hint)
        name = _name_prefix + renames.get(dotted, f.name)
        out.append(Option(name, path, kind, default, docs.get(f.name, ""), optional, length, **_declared(f)))
    if not _prefix:
        names = [o.name for o in out]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise TypeError(f"{cls.__name__}: option name(s) {dup} occur twice; rename one path")
    return out


def check_values(options: list[Option], values: dict[str, Any], source: str) -> dict[str, Any]:
    """Type-checked copies of ``values`` (flat names); an unknown name is a ConfigError."""
    by_name = {o.name: o for o in options}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(by_name)}")
    return {k: by_name[k].check(v, source) for k, v in values.items()}


def from_dict(cls: type, data: dict[str, Any], _defaults: Any = None) -> Any:
    """Rebuild a (nested) config dataclass from its ``asdict`` / JSON form (lists -> tuples); a
    nested config given in part keeps the parent's default for the rest, at any depth (a
    sweep's model is 64 x 64, not 200 x 200; a study's DDPM keeps its 2-channel U-Net)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        default = getattr(_defaults, f.name) if _defaults is not None else None
        if f.name not in data:
            if _defaults is not None:
                kwargs[f.name] = default
            continue
        value, hint = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, default if _defaults is not None else _default(f))
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def check_saved(cls: type, data: dict[str, Any], source: str) -> None:
    """A ConfigError naming ``source`` and the key if a saved (nested, JSON) configuration of
    ``cls`` holds a value of the wrong type, or a key the dataclass does not have."""
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of settings, got {data!r}")
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{source}: unknown key {key!r} for {cls.__name__}; the file was edited or written "
                              "by another rdlens")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            check_saved(hint, value, f"{source}: {key}")
            continue
        kind, optional, length = _kind(hint)
        Option(key, (key,), kind, None, optional=optional, length=length,
               **_declared(names[key], True)).check(value, source)


def nest(options: list[Option], values: dict[str, Any]) -> dict[str, Any]:
    """Flat values -> the nested dict of their config paths (for :func:`from_dict`)."""
    by_name = {o.name: o for o in options}
    out: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = by_name[name].path
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out

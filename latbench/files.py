"""Files: outputs written so that a reader never sees one half-written, and
configuration files (plans, search spaces; TOML or YAML) read with one-line errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from latbench.errors import ConfigError


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` with
    ordinary permissions (what the umask allows), on failure it is removed."""
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def read_config_file(name_or_path: str, what: str, builtins: Iterable[str]) -> tuple[dict[str, Any], str]:
    """The table of a TOML or YAML file and the file's stem (a default name), for a
    ``what`` given by built-in name or by path; anything else is a one-line ``ConfigError``."""
    path = Path(name_or_path)
    if path.suffix not in CONFIG_SUFFIXES or not path.is_file():
        raise ConfigError(
            f"unknown {what} {name_or_path!r}: use one of {', '.join(builtins)} "
            f"or a path to a .toml or .yaml {what} file"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text), path.stem
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{what} file {path} is not valid TOML: {exc}") from None
    import yaml  # PyYAML, a dependency; imported here so that importing latbench stays light

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1} column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{what} file {path} is not valid YAML: {problem}{at}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path} must hold a mapping of fields, got {type(data).__name__}")
    return data, path.stem


def check_fields(
    data: Mapping[str, Any],
    what: str,
    *,
    known: Iterable[str],
    required: Iterable[str] = (),
    noun: str = "field",
    source: str = "",
) -> None:
    """A one-line ``ConfigError`` when ``data`` (a ``what`` read from JSON, TOML or YAML) has
    keys outside ``known`` or lacks a ``required`` one; ``source`` (a file) prefixes it."""
    where = f"{source}: " if source else ""
    known = set(known)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}unknown {what} {noun}(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where}{what} needs {', '.join(missing)}")


T = TypeVar("T")


def load_named(
    name_or_path: str, builtins: Mapping[str, T], what: str, from_dict: Callable[[dict[str, Any], str], T]
) -> T:
    """A built-in ``what`` by name, else one read from a TOML or YAML file by ``from_dict``
    (given the file's table and stem, a default name)."""
    if name_or_path in builtins:
        return builtins[name_or_path]
    data, stem = read_config_file(name_or_path, what, builtins)
    return from_dict(data, stem)

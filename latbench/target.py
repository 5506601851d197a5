"""``Target``: a backend name plus the settings it runs with (threads, optimization level).

A target string is ``NAME`` or ``NAME:key=value,key=value``, e.g.
``onnxruntime-cpu:threads=2,opt_level=all``. Settings are validated and completed with
defaults by the backend (``Backend.normalize``), so two spellings of the same target
share one key in the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from latbench.errors import ConfigError
from latbench.keys import content_key

SettingValue = str | int | float | bool


@dataclass(frozen=True)
class Target:
    """Backend name, device kind and sorted ``(key, value)`` settings."""

    name: str
    device: str = "cpu"
    settings: tuple[tuple[str, SettingValue], ...] = ()

    def __post_init__(self) -> None:
        settings = self.settings
        if isinstance(settings, Mapping):
            settings = tuple(settings.items())
        object.__setattr__(self, "settings", tuple(sorted(settings)))

    @classmethod
    def parse(cls, text: str) -> Target:
        name, _, rest = text.strip().partition(":")
        name = name.strip()
        if not name:
            raise ConfigError("empty target name; see `latbench devices` for the targets")
        settings: dict[str, SettingValue] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"target setting {part!r} is not key=value (e.g. {name}:threads=2)")
            settings[key.strip()] = _coerce(value.strip())
        return cls(name=name, settings=tuple(settings.items()))

    def get(self, key: str, default: SettingValue | None = None) -> SettingValue | None:
        return dict(self.settings).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        return cls(data["name"], data.get("device", "cpu"), tuple(dict(data.get("settings", {})).items()))

    @property
    def key(self) -> str:
        return content_key(self.to_dict())

    def __str__(self) -> str:
        if not self.settings:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.settings)


def _coerce(value: str) -> SettingValue:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value

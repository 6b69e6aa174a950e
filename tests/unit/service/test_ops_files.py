"""The deployment files under ``ops/`` are what they claim to be.

- systemd units: ``systemd-analyze verify`` passes (where the command exists)
  and the keys the service relies on are there (always checked);
- the Containerfile: multi-stage, a non-root USER, exec-form ENTRYPOINT/CMD,
  a HEALTHCHECK on the health endpoint, and every command it RUNs is a line
  of a shell block in README.md's "Deploy" section (the same install steps);
- compose and Kubernetes YAML parse; every venom.toml in them loads with
  venom's own loader, every ``VENOM_*`` variable they set is a config key,
  every command line parses with venom's own parser and names real plugins;
  probes hit ``/livez`` and ``/readyz`` on the configured health port; the
  autoscaler scales the plugin Deployment; the NATS users and passwords line
  up with ``ops/nats/accounts.conf``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from venom.daemon.cli.main import build_parser
from venom.daemon.config.load import env_overrides, load_config
from venom.daemon.config.settings import DEFAULT_PLUGINS, VenomConfig
from venom.plugins.registry import available

REPO = Path(__file__).resolve().parents[3]
OPS = REPO / "ops"
UNITS = OPS / "systemd"
CONTAINERFILE = OPS / "container" / "Containerfile"
COMPOSE = OPS / "container" / "compose.yaml"
K8S = OPS / "k8s"
ACCOUNTS = OPS / "nats" / "accounts.conf"
README = REPO / "README.md"
#: Where the units expect venom (README, "Deploy": a virtualenv in /opt/venom).
INSTALLED_VENOM = "/opt/venom/bin/venom"


# --- helpers ----------------------------------------------------------------


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as section → [(key, value)], repeated keys kept in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        current.append((key.strip(), value.strip()))
    return sections


def _values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def _one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = _values(unit, section, key)
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def _seconds(value: str) -> float:
    """A systemd time span (``10``, ``10s``, ``1min 30s``) in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def _parse_cli(argv: list[str]) -> Any:
    """venom's own parser on ``argv`` (without the program name)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way to refuse
        raise AssertionError(f"venom rejects {argv}") from exc


def _plugins_of(args: Any) -> list[str]:
    assert args.command == "plugin", args
    assert args.plugin_command == "run", args
    names: list[str] = list(args.names)
    unknown = set(names) - set(available())
    assert not unknown, f"no such plugins: {unknown}"
    return names


def _instructions(path: Path) -> list[tuple[str, str]]:
    """Containerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "a continuation line at the end"
    return out


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(path):
        if keyword == "FROM":
            stages.append([])
        assert stages, "an instruction before the first FROM"
        stages[-1].append((keyword, rest))
    return stages


def _image_env() -> dict[str, str]:
    """The ENV of the Containerfile's final stage."""
    env: dict[str, str] = {}
    for keyword, rest in _stages(CONTAINERFILE)[-1]:
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _run_commands() -> list[str]:
    """Every shell command the Containerfile RUNs: each RUN split at ``&&``."""
    commands = []
    for keyword, rest in _instructions(CONTAINERFILE):
        if keyword == "RUN":
            assert not rest.startswith("["), "RUN in exec form: write it as the README does"
            commands += [" ".join(c.split()) for c in rest.split("&&")]
    return commands


def _deploy_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Deploy\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README.md has no '## Deploy' section followed by another section"
    return match.group(1)


def _shell_lines(markdown: str) -> set[str]:
    """The lines of the ```sh blocks, whitespace normalised."""
    lines = set()
    for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", markdown, flags=re.S | re.M):
        lines |= {" ".join(line.split()) for line in block.splitlines() if line.strip()}
    return lines


def _accounts_users() -> dict[str, str]:
    """user → the environment variable holding its password, from accounts.conf."""
    text = ACCOUNTS.read_text()
    pairs = re.findall(r"user:\s*(\w+)\s*,?\s*password:\s*\$(\w+)", text)
    assert pairs, "no users in accounts.conf"
    return dict(pairs)


def _loads_with(toml_text: str, env: Mapping[str, str], tmp: Path) -> VenomConfig:
    """The config venom builds from ``toml_text`` and ``env`` (raises ConfigError if bad)."""
    path = tmp / "venom.toml"
    path.write_text(toml_text)
    return load_config(path, env=env)


def _k8s_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def _workloads() -> list[dict[str, Any]]:
    return [d for _, d in _k8s_docs() if d.get("kind") in ("Deployment", "StatefulSet")]


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    """A container's env as a dict; a secret's value stands in as a string."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            assert "secretKeyRef" in item["valueFrom"], item
            env[item["name"]] = "from-a-secret"
    return env


# --- systemd ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["venom.service", "venom-plugin@.service"])
def test_unit_has_the_keys_the_service_relies_on(name: str) -> None:
    unit = _unit(UNITS / name)
    svc = "Service"
    assert _one(unit, svc, "Type") == "notify"
    assert _one(unit, svc, "NotifyAccess") == "main"
    watchdog = _seconds(_one(unit, svc, "WatchdogSec"))
    assert 0 < watchdog <= 60
    assert _one(unit, svc, "Restart") == "on-failure"
    assert _seconds(_one(unit, svc, "TimeoutStopSec")) >= 30  # finish the beat, drain
    assert _one(unit, svc, "KillSignal") == "SIGTERM"
    assert _one(unit, svc, "DynamicUser") == "yes"
    assert _one(unit, svc, "StateDirectory")
    assert _one(unit, svc, "ProtectSystem") == "strict"
    assert _one(unit, svc, "NoNewPrivileges") == "yes"
    families = set(" ".join(_values(unit, svc, "RestrictAddressFamilies")).split())
    # AF_UNIX: the notify socket and the journal; AF_INET(6): NATS.
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    filters = _values(unit, svc, "SystemCallFilter")
    assert "@system-service" in filters
    assert "MemoryDenyWriteExecute" not in {k for k, _ in unit[svc]}  # torch needs W+X pages
    assert _one(unit, "Install", "WantedBy") == "multi-user.target"

    argv = shlex.split(_one(unit, svc, "ExecStart"))
    assert argv[0] == INSTALLED_VENOM
    args = _parse_cli([a.replace("%i", "ledger") for a in argv[1:]])
    assert args.config == "/etc/venom/venom.toml"
    if name == "venom.service":
        assert args.command == "run"
        assert args.no_live  # the journal gets log lines, not a status line per second
        assert _one(unit, svc, "ExecReload") == "/bin/kill -HUP $MAINPID"
    else:
        assert _plugins_of(args) == ["ledger"]
        assert "%i" in _one(unit, svc, "StateDirectory")  # one state dir per instance


def _installed_copy(name: str, instance: str, where: Path) -> Path:
    """The unit with ExecStart's venom at this environment's venom.

    ``systemd-analyze verify`` checks that each Exec*= binary exists, and
    /opt/venom/bin/venom (the README's install location) is not installed on
    a test machine: the copy names the venom of this virtualenv instead.
    Nothing else changes.
    """
    venom = Path(sys.executable).parent / "venom"
    assert venom.exists(), venom
    text = (UNITS / name).read_text()
    assert INSTALLED_VENOM in text
    target = where / name.replace("@.", f"@{instance}.")
    target.write_text(text.replace(INSTALLED_VENOM, str(venom)))
    return target


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = [
        _installed_copy("venom.service", "", tmp_path),
        _installed_copy("venom-plugin@.service", "ledger", tmp_path),
    ]
    res = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == ""
    assert res.stderr.strip() == "", res.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_exposure_is_low(tmp_path: Path) -> None:
    """``systemd-analyze security`` rates each unit's sandbox at 2.0 or less ("OK")."""
    for name, instance in (("venom.service", ""), ("venom-plugin@.service", "ledger")):
        unit = _installed_copy(name, instance, tmp_path)
        res = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        if "--offline" in res.stderr and "unrecognized" in res.stderr:
            pytest.skip("systemd-analyze security has no --offline (systemd < 250)")
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr


# --- the Containerfile --------------------------------------------------------


def test_containerfile_is_multi_stage_non_root_exec_form_with_healthcheck() -> None:
    stages = _stages(CONTAINERFILE)
    assert len(stages) >= 2
    assert re.search(r"\bAS build$", stages[0][0][1], flags=re.I), stages[0][0]
    final = stages[-1]
    assert not re.search(r"\bAS\b", final[0][1], flags=re.I)
    copies = [rest for kw, rest in final if kw == "COPY"]
    assert any(rest.startswith("--from=build ") for rest in copies)
    assert not any(kw == "RUN" and "pip install" in rest for kw, rest in final)

    users = [rest for kw, rest in final if kw == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can check it; the same uid as the pods'.
    assert user.isdigit()
    for doc in _workloads():
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == int(user)
        assert pod["securityContext"]["runAsNonRoot"] is True

    def exec_form(keyword: str) -> list[str]:
        found = [rest for kw, rest in final if kw == keyword]
        assert len(found) == 1, f"{keyword}: {found}"
        value = json.loads(found[0])  # shell form is not JSON
        assert isinstance(value, list)
        assert all(isinstance(v, str) for v in value)
        return value

    entrypoint, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
    assert entrypoint == ["venom"]
    assert _parse_cli(cmd).command == "run"

    checks = [rest for kw, rest in final if kw == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, probe = checks[0].partition(" CMD ")
    probe_argv = json.loads(probe)  # exec form: no shell needed in the image
    assert probe_argv[0].startswith("python")
    code = probe_argv[-1]
    assert "/livez" in code
    assert "127.0.0.1" in code
    env = _image_env()
    default_port = re.search(r"'VENOM_HEALTH_PORT', '(\d+)'", code)
    assert default_port
    assert default_port.group(1) == env["VENOM_HEALTH_PORT"]
    assert "--start-period" in options

    # The image turns the health endpoint on, reachable from outside the container.
    config = load_config(None, env=env)  # raises ConfigError on a VENOM_* that is no key
    assert config.health.enabled
    assert config.health.host == "0.0.0.0"
    assert env["VENOM_STATE_DIR"] == "/var/lib/venom"


def test_containerfile_copies_what_exists() -> None:
    for keyword, rest in _instructions(CONTAINERFILE):
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                assert (REPO / source).exists(), source


def test_containerfile_commands_are_the_readmes() -> None:
    """Every RUN command, the run command and the build commands are in README's Deploy.

    "RUN command": each ``&&``-separated part of a RUN instruction, whitespace
    normalised; it must be a line of a ```sh block of the "Deploy" section
    (the systemd install steps use the same ones). The run command is
    ENTRYPOINT + CMD joined by spaces; the build commands are the
    ``podman build``/``docker build`` lines of the Containerfile's header.
    """
    lines = _shell_lines(_deploy_section())
    commands = _run_commands()
    assert len(commands) >= 3
    missing = [c for c in commands if c not in lines]
    assert not missing, f"in the Containerfile, not in README's Deploy: {missing}"

    final = _stages(CONTAINERFILE)[-1]
    entrypoint = json.loads(next(rest for kw, rest in final if kw == "ENTRYPOINT"))
    cmd = json.loads(next(rest for kw, rest in final if kw == "CMD"))
    assert " ".join(entrypoint + cmd) in lines

    header = re.findall(r"^#\s+((?:podman|docker) build .*)$", CONTAINERFILE.read_text(), re.M)
    assert len(header) == 2
    for build in header:
        assert " ".join(build.split()) in lines, build


# --- compose ------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _venom_services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    return {n: s for n, s in services.items() if str(s.get("image", "")).endswith("venom:0.1.0")}


def test_compose_parses_and_runs_nats_arbiter_plugins_and_ledger() -> None:
    services = _compose()["services"]
    assert set(services) == {"nats", "arbiter", "plugins", "ledger"}
    venom = _venom_services()
    assert set(venom) == {"arbiter", "plugins", "ledger"}
    for service in venom.values():
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == CONTAINERFILE
        assert service["depends_on"]["nats"]["condition"] == "service_healthy"

    arbiter = _parse_cli(venom["arbiter"]["command"])
    assert arbiter.command == "run"
    plugins = _plugins_of(_parse_cli(venom["plugins"]["command"]))
    ledger = _plugins_of(_parse_cli(venom["ledger"]["command"]))
    assert ledger == ["ledger"]
    # The whole default set runs, each plugin once, none in the arbiter.
    assert sorted(plugins + ledger) == sorted(DEFAULT_PLUGINS)


def test_compose_config_and_environment_are_venom_keys(tmp_path: Path) -> None:
    image_env = _image_env()
    for name, service in _venom_services().items():
        env = {k: str(v) for k, v in service["environment"].items()}
        env_overrides(env)  # raises ConfigError for a VENOM_* that names no key
        mounts = {
            v.split(":")[1]: COMPOSE.parent / v.split(":")[0]
            for v in service["volumes"]
            if v.startswith("./")
        }
        config_path = _parse_cli(service["command"]).config
        toml = mounts[config_path].read_text()
        config = _loads_with(toml, {**image_env, **env}, tmp_path)
        assert config.nats.url == "nats://nats:4222"
        assert config.plugins.run == [], name
        assert config.health.enabled, name
        assert config.health.port == int(image_env["VENOM_HEALTH_PORT"]), name


def test_compose_nats_users_match_the_accounts() -> None:
    users = _accounts_users()
    nats_service = _compose()["services"]["nats"]
    assert nats_service["command"] == ["-c", "/etc/nats/single.conf"]
    assert "../nats:/etc/nats:ro" in nats_service["volumes"]
    assert set(nats_service["environment"]) == set(users.values())
    for var, value in nats_service["environment"].items():
        assert value.startswith(f"${{{var}:?"), (var, value)  # required, never defaulted
    assert "8222" in nats_service["healthcheck"]["test"][-1]
    assert "http: 127.0.0.1:8222" in (OPS / "nats" / "single.conf").read_text()
    expected = {"arbiter": "arbiter", "plugins": "plugin", "ledger": "ledger"}
    for name, service in _venom_services().items():
        env = service["environment"]
        user = env["VENOM_NATS_USER"]
        assert user == expected[name]
        assert env["VENOM_NATS_PASSWORD"].startswith(f"${{{users[user]}:?")


# --- Kubernetes -----------------------------------------------------------------


def test_k8s_yaml_parses_and_kustomization_lists_every_manifest() -> None:
    docs = list(_k8s_docs())
    assert docs
    for path, doc in docs:
        assert isinstance(doc, dict), path
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "nats-values.yaml"}
    assert listed == on_disk
    for path, doc in docs:
        if path.name in listed:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path


def _configmap_toml() -> str:
    maps = [d for _, d in _k8s_docs() if d.get("kind") == "ConfigMap"]
    assert len(maps) == 1
    assert maps[0]["metadata"]["name"] == "venom-config"
    return str(maps[0]["data"]["venom.toml"])


def test_k8s_configmap_is_a_venom_config(tmp_path: Path) -> None:
    config = _loads_with(_configmap_toml(), {}, tmp_path)
    assert config.plugins.run == []
    assert config.nats.url == "nats://nats:4222"  # the chart's Service, release "nats"
    assert config.health.enabled
    assert config.health.host == "0.0.0.0"
    assert config.plugins.settings["ledger"]["replicas"] == 3


def _probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(named[port])


def test_k8s_workloads_run_venom_with_probes_on_the_health_port(tmp_path: Path) -> None:
    users = _accounts_users()
    toml = _configmap_toml()
    image_env = _image_env()
    placed: list[str] = []
    workloads = _workloads()
    assert {w["metadata"]["name"] for w in workloads} == {
        "venom-arbiter",
        "venom-plugins",
        "venom-stateful-plugins",
        "venom-ledger",
    }
    for doc in workloads:
        name = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 30
        (container,) = pod["containers"]
        assert container["image"] == "venom"  # set by kustomization.yaml's images
        env = _container_env(container)
        env_overrides(env)  # raises ConfigError for a VENOM_* that names no key
        config = _loads_with(toml, {**image_env, **env}, tmp_path)

        args = _parse_cli(container["args"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        config_dir = str(Path(args.config).parent)
        assert volumes[mounts[config_dir]]["configMap"]["name"] == "venom-config"
        assert mounts["/var/lib/venom"]  # the state dir (VENOM_STATE_DIR) is writable
        assert container["securityContext"]["readOnlyRootFilesystem"] is True

        for kind, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            probe = container[kind]
            assert probe["httpGet"]["path"] == path, (name, kind)
            assert _probe_port(container, probe) == config.health.port, (name, kind)
        assert config.health.enabled
        assert config.health.host == "0.0.0.0"

        user = env["VENOM_NATS_USER"]
        assert user in users
        secret = next(e for e in container["env"] if e["name"] == "VENOM_NATS_PASSWORD")
        assert secret["valueFrom"]["secretKeyRef"] == {"name": "venom-nats", "key": user}
        if name == "venom-arbiter":
            assert args.command == "run"
            assert user == "arbiter"
            assert doc["spec"]["replicas"] == 1  # one arbiter beats
            assert doc["spec"]["strategy"]["type"] == "Recreate"
        else:
            placed += _plugins_of(args)
            assert user == ("ledger" if name == "venom-ledger" else "plugin")
    # The whole default set runs, each plugin in one workload.
    assert sorted(placed) == sorted(DEFAULT_PLUGINS)


def test_k8s_hpa_scales_the_plugin_deployment_on_cpu() -> None:
    hpas = [d for _, d in _k8s_docs() if d.get("kind") == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1
    spec = hpas[0]["spec"]
    target = spec["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    (deployment,) = [w for w in _workloads() if w["metadata"]["name"] == target["name"]]
    assert deployment["kind"] == "Deployment"
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]
    assert _plugins_of(_parse_cli(container["args"]))
    assert spec["minReplicas"] >= 1
    assert spec["maxReplicas"] > spec["minReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_k8s_nats_values_take_the_passwords_from_the_secret() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["cluster"]["replicas"] == 3
    assert values["config"]["jetstream"]["enabled"] is True
    users = values["config"]["merge"]["accounts"]["VENOM"]["users"]
    by_user = {u["user"]: u["password"] for u in users}
    assert by_user == {user: f"<< ${var} >>" for user, var in _accounts_users().items()}
    env = values["container"]["env"]
    for user, var in _accounts_users().items():
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "venom-nats", "key": user}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl here")
def test_kustomize_builds() -> None:
    res = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert all(d["metadata"].get("namespace") == "venom" for d in docs if d["kind"] != "Namespace")
    images = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    assert images == {"venom:0.1.0"}

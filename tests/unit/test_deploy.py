"""The deployment files, checked without a container engine: every file parses, every
command they run exists in the ``seedworker`` CLI (subcommands and options, parsed by click
itself), every SEEDWORKER_* variable they set is a setting and each service's environment
builds a valid Settings, services wait for healthy Redis/PostgreSQL, KEDA scales on the
queue the worker consumes, and systemd units carry the shutdown fields that matter.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from worker.cli import main
from worker.services import flower_command
from worker.settings import ENV_PREFIX, Settings, unknown_env_keys

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ENTRYPOINT_SCRIPT = DEPLOY / "seedworker-entrypoint.sh"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"


# -- the two oracles: the click CLI and the Settings model ------------------------------------------
def check_command(argv: list[str]) -> click.Context:
    """Parse ``seedworker …`` with the real click command tree; raise if anything is unknown."""
    assert argv, "empty command"
    assert Path(argv[0]).name == "seedworker", f"not a seedworker command: {argv}"
    command: click.Command = main
    args = list(argv[1:])
    path = ["seedworker"]
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand"
        name = args.pop(0)
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"`{' '.join(path)}` has no subcommand {name!r} (in {argv})"
        path.append(name)
        command = sub
    try:
        return command.make_context(" ".join(path), args)
    except click.ClickException as exc:
        raise AssertionError(f"{argv}: {exc.format_message()}") from exc


def check_env(env: dict[str, str]) -> Settings:
    """The settings a process with exactly this environment would get (no .env, nothing else)."""
    ours = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    assert unknown_env_keys(ours) == [], f"unknown settings: {unknown_env_keys(ours)}"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(ENV_PREFIX)}
    try:
        os.environ.update(ours)
        return Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        for k in ours:
            os.environ.pop(k, None)
        os.environ.update(saved)


def test_the_oracles_reject_what_does_not_exist() -> None:
    check_command(["seedworker", "worker", "--concurrency=2", "--queues=a,b", "--node-name=x@y"])
    for bad in (
        ["seedworker", "wrker"],
        ["seedworker", "worker", "--bogus"],
        ["seedworker", "worker", "--pool=gevent"],
    ):
        with pytest.raises(AssertionError):
            check_command(bad)
    with pytest.raises(AssertionError, match="unknown settings"):
        check_env({"SEEDWORKER_BROKR_URL": "redis://x"})
    with pytest.raises(ValueError):
        check_env({"SEEDWORKER_CONCURRENCY": "many"})


# -- compose ----------------------------------------------------------------------------------------
def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: Any, variables: dict[str, str]) -> Any:
    """docker compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$."""
    if isinstance(value, dict):
        return {k: _interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if variables.get(name):
            return variables[name]
        if op and op.endswith("?"):
            raise AssertionError(f"compose variable {name} is required: {arg}")
        return arg or ""

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    raw = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return dict(_interpolate(raw, _env_file(DEPLOY / "compose.env.example")))


def _seedworker_services(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in compose["services"].items():
        if "build" in service or str(service.get("image", "")).startswith("seedworker"):
            yield name, service


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"redis", "postgres", "migrate", "worker", "watcher", "publisher", "flower"}
    assert compose["services"]["worker"]["deploy"]["replicas"] >= 2
    redis_cmd = compose["services"]["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--requirepass" in redis_cmd
    build = compose["services"]["worker"]["build"]
    assert ((DEPLOY / build["context"]).resolve() / build["dockerfile"]).is_file()


def test_compose_services_run_real_commands_with_valid_settings(compose: dict[str, Any]) -> None:
    services = dict(_seedworker_services(compose))
    assert set(services) == {"migrate", "worker", "webhooks", "watcher", "publisher", "flower"}
    redis_cmd = compose["services"]["redis"]["command"]
    redis_password = redis_cmd[redis_cmd.index("--requirepass") + 1]
    pg_env = compose["services"]["postgres"]["environment"]
    for name, service in services.items():
        check_command(["seedworker", *service["command"]])
        settings = check_env({k: str(v) for k, v in service["environment"].items()})
        broker = urlsplit(settings.broker_url)
        assert (broker.hostname, broker.port, broker.password) == ("redis", 6379, redis_password), name
        db = urlsplit(settings.database_url)
        assert db.hostname == "postgres" and db.username == pg_env["POSTGRES_USER"], name
        assert db.password == pg_env["POSTGRES_PASSWORD"] and db.path == "/" + pg_env["POSTGRES_DB"], name
        assert service["stop_signal"] == "SIGTERM" and service["stop_grace_period"], name
        assert service["init"] is True, name
        health = service["healthcheck"]
        if name == "migrate":
            assert health == {"disable": True} and service["restart"] == "no"
            continue
        if health["test"][1] == "seedworker":
            check_command(health["test"][1:])
        if name == "flower":
            flower_command(settings, settings.broker_url)  # raises off loopback without basic auth
            assert settings.flower_address == "0.0.0.0" and settings.flower_basic_auth is not None
        if name == "watcher":
            mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
            assert str(settings.inbox) in mounts, "the watcher must mount the inbox"


def test_compose_services_wait_for_healthy_redis_and_postgres(compose: dict[str, Any]) -> None:
    for name, service in _seedworker_services(compose):
        deps = service["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert deps["migrate"]["condition"] == "service_completed_successfully", name
    for name in ("redis", "postgres"):
        assert compose["services"][name]["healthcheck"]["test"], name
    migrate = compose["services"]["migrate"]["command"]
    assert migrate == ["db", "upgrade"]


# -- Dockerfile -------------------------------------------------------------------------------------
def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buffer = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        buffer += " " + stripped.removesuffix("\\").strip() if buffer else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        word, _, rest = buffer.partition(" ")
        out.append((word.upper(), rest.strip()))
        buffer = ""
    assert not buffer, "dangling continuation line"
    return out


def test_dockerfile_is_multi_stage_non_root_and_runs_seedworker() -> None:
    instructions = _dockerfile(DEPLOY / "Dockerfile")
    known = {"FROM", "RUN", "COPY", "ENV", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "HEALTHCHECK", "EXPOSE", "VOLUME"}
    assert {i for i, _ in instructions} <= known | {"STOPSIGNAL", "ARG", "LABEL"}
    froms = [args for i, args in instructions if i == "FROM"]
    assert len(froms) >= 2 and all(f.startswith("python:3.11-slim") for f in froms)
    final = instructions[max(n for n, (i, _) in enumerate(instructions) if i == "FROM") :]
    # root only for the entry point, which maps USERMAP_UID/GID and drops privileges: the
    # `seedworker` first on PATH (for ENTRYPOINT, HEALTHCHECK, `exec`) is that script
    users = [args for i, args in final if i == "USER"]
    assert users and users[-1] == "root"
    entrypoint = [json.loads(args) for i, args in final if i == "ENTRYPOINT"]
    assert entrypoint == [["seedworker"]]
    [path_env] = [args for i, args in final if i == "ENV" and "PATH=" in args]
    first_on_path = dict(pair.partition("=")[::2] for pair in shlex.split(path_env))["PATH"].split(":")[0]
    copies = [shlex.split(args) for i, args in final if i == "COPY" and "--from=" not in args]
    assert ["--chmod=0755", "deploy/seedworker-entrypoint.sh", f"{first_on_path}/seedworker"] in copies
    assert "REAL=/opt/seedworker/bin/seedworker" in ENTRYPOINT_SCRIPT.read_text()
    [cmd] = [json.loads(args) for i, args in final if i == "CMD"]
    check_command(["seedworker", *cmd])
    [health] = [args for i, args in final if i == "HEALTHCHECK"]
    probe = json.loads(health[health.index("CMD") + 3 :])
    check_command(probe)
    env: dict[str, str] = {}
    for i, args in final:
        if i == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    settings = check_env(env)
    assert settings.log_format == "json" and str(settings.data_dir) == "/data"
    useradd = next(args for i, args in final if i == "RUN" and "useradd" in args)
    assert f"--uid {env['USERMAP_UID']} " in useradd and f"--gid {env['USERMAP_GID']} " in useradd
    assert [a for i, a in final if i == "STOPSIGNAL"] == ["SIGTERM"]


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    instructions = _dockerfile(DEPLOY / "Dockerfile")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for i, args in instructions:
        if i != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [a for a in shlex.split(args) if not a.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            name = source.rstrip("/")
            assert any(line.strip() in (f"!{name}", f"!{name}/**") for line in ignore), f"{source} is ignored"


# -- systemd ----------------------------------------------------------------------------------------
def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _expand(value: str) -> str:
    return value.replace("%i", "w1").replace("%H", "host.example").replace("%%", "%")


@pytest.mark.parametrize(
    ("unit", "stop_at_least"),
    [
        ("seedworker-worker@.service", 60),
        ("seedworker-watcher.service", 10),
        ("seedworker-publisher.service", 10),
        ("seedworker-flower.service", 10),
    ],
)
def test_systemd_units_run_real_commands_and_stop_in_two_stages(unit: str, stop_at_least: int) -> None:
    parsed = _unit(SYSTEMD / unit)
    assert parsed.sections() == ["Unit", "Service", "Install"]
    service = parsed["Service"]
    assert parsed["Unit"]["Description"] and "network-online.target" in parsed["Unit"]["After"]
    check_command(shlex.split(_expand(service["ExecStart"])))
    assert service["ExecStart"].startswith("/opt/seedworker/bin/seedworker ")
    assert service["KillSignal"] == "SIGTERM"  # stage one: stop taking work, finish
    assert service["KillMode"] == "mixed"  # SIGTERM to the main process, SIGKILL to what is left
    assert int(service["TimeoutStopSec"]) >= stop_at_least  # stage two after this
    assert service["Restart"] in ("on-failure", "always")
    assert service["User"] and service["User"] != "root"
    assert (SYSTEMD / Path(service["EnvironmentFile"].lstrip("-")).name).is_file()
    assert parsed["Install"]["WantedBy"] == "seedworker.target"
    if "@" in unit:
        assert "%i" in service["ExecStart"], "a template unit must use its instance name"
    writable = service["ReadWritePaths"].split()
    settings = check_env(_env_file(SYSTEMD / "seedworker.env"))
    assert str(settings.data_dir) in writable
    if "watcher" in unit:
        assert str(settings.inbox) in writable


def test_systemd_env_file_is_valid_settings_and_the_target_names_real_units() -> None:
    settings = check_env(_env_file(SYSTEMD / "seedworker.env"))
    assert settings.broker_url.startswith("rediss://") and "ssl_ca_certs=" in settings.broker_url
    flower_command(settings, settings.broker_url)  # Flower off loopback has basic auth
    target = _unit(SYSTEMD / "seedworker.target")
    for wanted in target["Unit"]["Wants"].split():
        template = re.sub(r"@[^.]+\.", "@.", wanted)
        assert (SYSTEMD / template).is_file(), wanted


# -- Kubernetes -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects


def _deployments(k8s: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: doc for (kind, name), doc in k8s.items() if kind == "Deployment"}


def _container_env(k8s: dict[tuple[str, str], dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s[("ConfigMap", source["configMapRef"]["name"])]["data"])
        if "secretRef" in source:
            env.update(k8s[("Secret", source["secretRef"]["name"])]["stringData"])
    for item in container.get("env", []):
        env[item["name"]] = str(item["value"])
    return env


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_k8s_deployments_run_real_commands_with_valid_settings(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployments = _deployments(k8s)
    roles = {d["spec"]["template"]["spec"]["containers"][0]["args"][0] for d in deployments.values()}
    assert roles == {"worker", "publish", "watch", "flower"}
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), name
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            check_command(["seedworker", *container["args"]])
            settings = check_env(_container_env(k8s, container))
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    continue
                if "exec" in container[probe]:
                    check_command(container[probe]["exec"]["command"])
                else:
                    path = container[probe]["httpGet"]["path"]
                    assert path == f"/{settings.flower_url_prefix.strip('/')}/healthcheck", name
            if container["args"][0] == "worker":
                assert pod["terminationGracePeriodSeconds"] >= 60, name
                assert container["livenessProbe"]["exec"]["command"][:2] == ["seedworker", "health"]
            if container["args"][0] == "flower":
                flower_command(settings, settings.broker_url)
            if container["args"][0] == "watch":
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert str(settings.inbox) in mounts and str(settings.data_dir) in mounts
                assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"


def test_k8s_migration_job_runs_db_upgrade(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    jobs = [doc for (kind, _), doc in k8s.items() if kind == "Job"]
    assert len(jobs) == 1
    [container] = jobs[0]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    check_command(["seedworker", *container["args"]])
    settings = check_env(_container_env(k8s, container))
    assert settings.database_url.startswith("postgresql://")


def test_k8s_services_select_real_pods(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployments = _deployments(k8s)
    services = {name: doc for (kind, name), doc in k8s.items() if kind == "Service"}
    assert services
    for name, service in services.items():
        selector = service["spec"]["selector"].items()
        targets = [d for d in deployments.values() if selector <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert targets, f"Service {name} selects no pods"
        ports = {p["name"] for d in targets for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, name


def _consumed_queues(settings: Settings, args: list[str]) -> list[str]:
    ctx = check_command(["seedworker", *args])
    queues = ctx.params.get("queues")
    return str(queues).split(",") if queues else sorted({settings.queue, settings.effective_tag_queue})


def test_keda_scales_each_worker_on_the_queue_it_consumes(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployments = _deployments(k8s)
    scaled = {name: doc for (kind, name), doc in k8s.items() if kind == "ScaledObject"}
    workers = {
        n for n, d in deployments.items() if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"
    }
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == workers
    for name, obj in scaled.items():
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        container = target["spec"]["template"]["spec"]["containers"][0]
        settings = check_env(_container_env(k8s, container))
        consumed = _consumed_queues(settings, container["args"])
        [trigger] = obj["spec"]["triggers"]
        assert trigger["type"] == "redis", name
        meta = trigger["metadata"]
        assert [meta["listName"]] == consumed, f"{name} scales on {meta['listName']}, the worker consumes {consumed}"
        assert meta["listName"] in (settings.queue, settings.effective_tag_queue)
        broker = urlsplit(settings.broker_url)
        assert meta["address"] == f"{broker.hostname}:{broker.port}", name
        assert meta["databaseIndex"] == broker.path.strip("/"), name
        assert int(meta["listLength"]) > 0
        auth = k8s[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
        for ref in auth["spec"]["secretTargetRef"]:
            secret = k8s[("Secret", ref["name"])]
            assert ref["key"] in secret["stringData"]
            if ref["parameter"] == "password":
                assert secret["stringData"][ref["key"]] == broker.password, "KEDA's password is not the broker's"


# -- the real tools, where the machine has them (offline, no cluster, no systemd manager needed) --------
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    seedworker = Path(sys.executable).with_name("seedworker")  # the units' binary, as installed here
    for unit in SYSTEMD.iterdir():
        text = unit.read_text().replace("/opt/seedworker/bin/seedworker", str(seedworker))
        name = unit.name.replace("@.service", "@w1.service")
        (tmp_path / name).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir() if p.suffix in (".service", ".target"))
    done = subprocess.run(
        [tool, "verify", "--man=no", *units], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_kustomize_builds_every_manifest(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    import shutil
    import subprocess

    tool = shutil.which("kubectl")
    if tool is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run([tool, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    built = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(done.stdout) if d}
    assert set(built) == set(k8s)
    images = {
        c["image"]
        for d in built.values()
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"seedworker:0.1.0"}
    assert all(d["metadata"].get("namespace") == "seedworker" for d in built.values() if d["kind"] != "Namespace")


def test_grace_periods_outlast_a_workers_warm_shutdown(
    compose: dict[str, Any], k8s: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """A SIGTERMed worker (a warm shutdown) waits for its running tasks; the longest a task
    waits without being able to end is the SQLite busy timeout (then it retries and the message
    is back on the queue) and, after a commit with Redis down, the reply's patience; a cold
    shutdown is bounded by the soft-shutdown timeout.  Killed before that, its messages come
    back only after the visibility timeout.  Every grace period must be longer than both."""
    from tasks._common import REPLY_PATIENCE_SECONDS
    from worker.app import create_app
    from worker.store.engine import SQLITE_BUSY_SECONDS

    soft = float(create_app(Settings(_env_file=None), "redis://127.0.0.1:1/0").conf.worker_soft_shutdown_timeout)  # type: ignore[call-arg]
    margin = max(soft, SQLITE_BUSY_SECONDS + REPLY_PATIENCE_SECONDS) + 20
    worker_unit = _unit(SYSTEMD / "seedworker-worker@.service")["Service"]
    assert int(worker_unit["TimeoutStopSec"]) > margin
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > margin
    for deployment in _deployments(k8s).values():
        pod = deployment["spec"]["template"]["spec"]
        if pod["containers"][0]["args"][0] == "worker":
            assert pod["terminationGracePeriodSeconds"] > margin


# -- the image's entry point (USERMAP_UID / USERMAP_GID), run for real ------------------------------
def _can_isolate() -> bool:
    """Root with mount namespaces: the entry point can run against a private /etc and /opt."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    done = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return done.returncode == 0


needs_isolation = pytest.mark.skipif(not _can_isolate(), reason="needs root and mount namespaces (unshare)")


@pytest.fixture
def container() -> Iterator[Path]:
    """A directory the dropped user can reach (pytest's tmp_path is root-only): etc/ holds a
    copy of this machine's user database, data/ and inbox/ the image's volumes."""
    with tempfile.TemporaryDirectory(prefix="seedworker-entrypoint-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        (root / "etc").mkdir()
        for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
            if Path("/etc", name).exists():
                shutil.copy2(Path("/etc", name), root / "etc" / name)
        for volume in ("data", "inbox"):
            (root / volume).mkdir()
        yield root


def _reachable(root: Path, targets: list[Path]) -> str:
    """Shell lines that let any user reach these directories inside the namespace, at the same
    paths (a virtualenv's scripts and its editable install name them absolutely).  In the image
    everything sits in /usr/local and /opt; here the checkout may be in a root-only temporary
    folder, and Python under /root (pyenv): cover each closed folder on the way with an open
    tmpfs and bind back the one entry needed below it, outermost first."""
    closed: dict[Path, set[str]] = {}
    for target in targets:
        resolved = target.resolve()
        for parent in reversed(resolved.parents):
            if not parent.stat().st_mode & 0o001:
                closed.setdefault(parent, set()).add(resolved.relative_to(parent).parts[0])
    lines: list[str] = []
    for n, parent in enumerate(sorted(closed, key=lambda p: len(p.parts))):
        kept = [(root / "keep" / f"{n}-{child}", parent / child) for child in sorted(closed[parent])]
        lines += [f"mkdir -p {keep} && mount --bind {path} {keep}" for keep, path in kept]
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {parent}")
        lines += [f"mkdir {path} && mount --bind {keep} {path}" for keep, path in kept]
    return "\n".join(lines)


def run_entrypoint(root: Path, args: list[str], env: dict[str, str], *, as_uid: int | None = None) -> str:
    """The image's entry point as `docker run` starts it: in a private mount namespace whose /etc
    is ``root/etc`` plus the Dockerfile's seedworker user (uid/gid 10001) and whose
    /opt/seedworker/bin is this virtualenv's bin (the real seedworker).  Returns its output."""
    venv_bin = Path(sys.executable).parent
    drop = f"setpriv --reuid={as_uid} --regid={as_uid} --clear-groups" if as_uid is not None else ""
    setup = f"""
        set -e
        {_reachable(root, [REPO, Path(sys.prefix), Path(sys.base_prefix)])}
        mount --bind {root / "etc"} /etc
        mount -t tmpfs tmpfs /opt
        mkdir -p /opt/seedworker && ln -s {venv_bin} /opt/seedworker/bin
        groupadd --system --gid 10001 seedworker
        useradd --system --uid 10001 --gid seedworker --home-dir /data --shell /usr/sbin/nologin seedworker
        exec {drop} /bin/sh {ENTRYPOINT_SCRIPT} "$@"
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith((ENV_PREFIX, "USERMAP_"))}
    full_env.update({"SEEDWORKER_DATA_DIR": str(root / "data"), "SEEDWORKER_INBOX": str(root / "inbox"), **env})
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", setup, "entrypoint", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


@needs_isolation
def test_entrypoint_maps_usermap_ids_and_drops_root(container: Path) -> None:
    (container / "data" / "left-by-an-older-image").write_text("x")
    (container / "inbox" / "dropped-by-the-host-user.txt").write_text("x")
    out = run_entrypoint(container, ["db", "upgrade"], {"USERMAP_UID": "4242", "USERMAP_GID": "4343"})
    assert "mapped to uid 4242" in out and "mapped to gid 4343" in out
    # the real seedworker ran as 4242:4343: the database it created is theirs
    assert _owner(container / "data" / "seedworker.db") == (4242, 4343)
    assert _owner(container / "data") == _owner(container / "data" / "left-by-an-older-image") == (4242, 4343)
    assert _owner(container / "inbox") == (4242, 4343)
    assert _owner(container / "inbox" / "dropped-by-the-host-user.txt") == (0, 0)  # the user's files stay theirs


@needs_isolation
def test_entrypoint_without_usermap_runs_as_the_image_user(container: Path) -> None:
    out = run_entrypoint(container, ["db", "upgrade"], {})
    assert "mapped" not in out
    assert _owner(container / "data" / "seedworker.db") == (10001, 10001)


@needs_isolation
def test_entrypoint_started_as_non_root_changes_nothing(container: Path) -> None:
    """docker run --user / Kubernetes runAsUser: no mapping, seedworker runs as that user."""
    for volume in ("data", "inbox"):
        os.chown(container / volume, 5005, 5005)
    run_entrypoint(container, ["db", "upgrade"], {"USERMAP_UID": "4242"}, as_uid=5005)
    assert _owner(container / "data" / "seedworker.db") == (5005, 5005)
    assert _owner(container / "inbox") == (5005, 5005)


@needs_isolation
@pytest.mark.parametrize(("env", "message"), [
    ({"USERMAP_UID": "0"}, "would run seedworker as root"),
    ({"USERMAP_GID": "0"}, "would run seedworker as root"),
    ({"USERMAP_UID": "paperless"}, "USERMAP_UID=paperless is not a number"),
])  # fmt: skip
def test_entrypoint_refuses_root_and_bad_ids(container: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        run_entrypoint(container, ["db", "upgrade"], env)
    assert not (container / "data" / "seedworker.db").exists()


def test_entrypoint_passes_arguments_and_signals_through() -> None:
    """Every path ends in `exec` (signals reach seedworker itself, PID stays) with "$@" intact."""
    text = ENTRYPOINT_SCRIPT.read_text()
    assert text.startswith("#!/bin/sh\n") and os.access(ENTRYPOINT_SCRIPT, os.X_OK)
    execs = [line.strip() for line in text.splitlines() if line.strip().startswith("exec ") and '"$@"' in line]
    assert execs == ['exec "$REAL" "$@"', 'exec setpriv --reuid="$uid" --regid="$gid" --clear-groups '
                     '--inh-caps=-all --bounding-set=-all -- "$REAL" "$@"']  # fmt: skip
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT_SCRIPT)], check=False).returncode == 0


def test_compose_and_k8s_choose_the_user(compose: dict[str, Any], k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    example = _env_file(DEPLOY / "compose.env.example")
    for name, service in _seedworker_services(compose):
        assert service["environment"]["USERMAP_UID"] == example["USERMAP_UID"], name
        assert service["environment"]["USERMAP_GID"] == example["USERMAP_GID"], name
    for (kind, name), doc in k8s.items():
        if kind in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]["securityContext"]
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0 and pod["runAsGroup"] > 0, name

"""The Docker image's command line and the systemd unit's ExecStart start the app.

There is no Docker engine or systemd here, so each file is parsed and the very
command it names is run locally, with only paths and the port substituted:
the image layout (/app with what the Dockerfile COPYs, /opt/venv) becomes a
scratch folder and this venv; /opt/twir-mail becomes this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.core import free_port, skip_unless

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
UNITS = ROOT / "deploy" / "systemd"
VENV_BIN = Path(sys.executable).parent
SECRET = "deploy-test-secret-key-0123456789"



# -- parsing ---------------------------------------------------------------------

def dockerfile_final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines[last_from:]]


def docker_env(stage) -> dict[str, str]:
    env = {}
    for instr, args in stage:
        if instr == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def unit_service(name: str) -> dict[str, list[str]]:
    """[Service] keys of a unit file (repeated keys kept in order)."""
    out: dict[str, list[str]] = {}
    section = None
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def replace_arg(argv: list[str], flag: str, value: str) -> list[str]:
    i = argv.index(flag)
    return argv[:i + 1] + [value] + argv[i + 2:]


# -- running ---------------------------------------------------------------------

def start_and_probe(argv: list[str], env: dict[str, str], cwd: Path, port: int, token_path: str) -> tuple[int, int]:
    """Start ``argv``, wait for /healthz, GET an unsubscribe page; stop it. Returns both statuses."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{argv[0]} exited {proc.returncode}: {proc.stdout.read().decode(errors='replace')}")
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("the app did not answer on /healthz within 60 s")
                time.sleep(0.2)
        page = httpx.get(f"http://127.0.0.1:{port}{token_path}", timeout=10)
        return health.status_code, page.status_code
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # uvicorn and its workers, all started here
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIR_MAIL_", "PYTHON", "WEB_CONCURRENCY",
                                                                     "FORWARDED_ALLOW_IPS"))}
    env["HOME"] = str(tmp_path)
    return env


def prepare_db(env: dict[str, str], cwd: Path, python_argv: list[str]) -> str:
    """Migrate the database the documented way and return an unsubscribe path for a new subscriber."""
    up = subprocess.run([*python_argv, "db", "upgrade"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    script = ("from mailer.config import load_settings; from mailer.store import open_store; "
              "from mailer.tokens import Signer; s = load_settings(); st = open_store(s); "
              "sub = st.add('reader@example.com'); "
              "print('/unsubscribe/' + Signer(s.secret_key).unsubscribe_token(sub.id, st.list_id('main')))")
    made = subprocess.run([str(VENV_BIN / "python"), "-c", script], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_long_running_servers_start_the_web_factory_not_the_lambda_adapter():
    """Docker, systemd and `serve --workers` hand uvicorn mailer.web:app_from_env; Lambda has its own entry."""
    cmd = json.loads([a for i, a in dockerfile_final_stage() if i == "CMD"][-1])
    unit = shlex.split(unit_service("twir-mail-web.service")["ExecStart"][0])
    serve = (ROOT / "mailer" / "cli" / "web.py").read_text()
    for argv in (cmd, unit):
        assert argv[argv.index("--factory") + 1] == "mailer.web:app_from_env"
    assert '"mailer.web:app_from_env", factory=True' in serve and "aws_lambda" not in serve


# -- Docker ------------------------------------------------------------------------

def test_dockerfile_is_slim_and_non_root():
    stage = dockerfile_final_stage()
    assert stage[0][0] == "FROM" and stage[0][1].endswith("-slim")
    users = [args for instr, args in stage if instr == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "--factory" in json.loads([a for i, a in stage if i == "CMD"][-1])


def test_docker_cmd_serves_the_app(tmp_path):
    stage = dockerfile_final_stage()
    app_dir = tmp_path / "app"  # stands for the image's /app
    for instr, args in stage:
        if instr == "COPY" and not args.startswith("--from"):
            src, dest = args.split()
            assert dest.startswith("/app/")
            shutil.copytree(ROOT / src, app_dir / dest[len("/app/"):], ignore=shutil.ignore_patterns("__pycache__"))
    image_env = docker_env(stage)
    workdir = Path([a for i, a in stage if i == "WORKDIR"][-1])
    assert workdir == Path("/app")
    cmd = json.loads([a for i, a in stage if i == "CMD"][-1])

    def local(value: str) -> str:
        return value.replace("/opt/venv/bin", str(VENV_BIN)).replace("/app", str(app_dir))

    env = base_env(tmp_path)
    for key, value in image_env.items():
        env[key] = local(value).replace("$PATH", env.get("PATH", ""))
    env.update(TWIR_MAIL_SECRET_KEY=SECRET, TWIR_MAIL_DATABASE_URL=f"sqlite:///{tmp_path / 'twir-mail.db'}",
               TWIR_MAIL_WEB_BASE_URL="https://mail.example.org")
    port = free_port()
    argv = replace_arg(replace_arg(cmd, "--port", str(port)), "--host", "127.0.0.1")
    argv[0] = shutil.which(argv[0], path=env["PATH"])
    assert argv[0] and argv[0].startswith(str(VENV_BIN))
    token_path = prepare_db(env, app_dir, [str(VENV_BIN / "python"), "-m", "mailer"])  # as the Dockerfile says
    health, page = start_and_probe(argv, env, app_dir, port, token_path)
    assert (health, page) == (200, 200)


# -- systemd -----------------------------------------------------------------------

def test_systemd_units_start_the_app(tmp_path):
    web, migrate = unit_service("twir-mail-web.service"), unit_service("twir-mail-migrate.service")
    assert web["User"] == ["twirmail"] and web["NoNewPrivileges"] == ["yes"]
    port = free_port()
    config = tmp_path / "twir-mail.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "twir-mail.db"}"\n\n'
                      f'[web]\nbase_url = "https://mail.example.org"\n')
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"TWIR_MAIL_SECRET_KEY={SECRET}\n")

    def local(value: str) -> str:
        return (value.replace("/opt/twir-mail/.venv/bin", str(VENV_BIN)).replace("/opt/twir-mail", str(ROOT))
                .replace("/etc/twir-mail/twir-mail.toml", str(config)).replace("/etc/twir-mail/secrets.env", str(secrets)))

    def unit_env(unit) -> dict[str, str]:
        env = base_env(tmp_path)
        env["PYTHONPATH"] = str(ROOT)  # on the VM the venv's editable install points at /opt/twir-mail
        for item in unit.get("Environment", []):
            key, _, value = local(item).partition("=")
            env[key] = value
        for path in unit.get("EnvironmentFile", []):
            for line in Path(local(path)).read_text().splitlines():
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    env[key] = value
        return env

    cwd = Path(local(web["WorkingDirectory"][0]))
    migrate_argv = shlex.split(local(migrate["ExecStart"][0]))
    assert migrate_argv[1:] == ["db", "upgrade"]
    token_path = prepare_db(unit_env(migrate), cwd, migrate_argv[:1])
    argv = replace_arg(shlex.split(local(web["ExecStart"][0])), "--port", str(port))
    assert argv[0] == str(VENV_BIN / "uvicorn")
    health, page = start_and_probe(argv, unit_env(web), cwd, port, token_path)
    assert (health, page) == (200, 200)


def test_send_resume_unit_runs_a_valid_command(tmp_path):
    unit = unit_service("twir-mail-send-resume@.service")
    argv = shlex.split(unit["ExecStart"][0].replace("/opt/twir-mail/.venv/bin", str(VENV_BIN)).replace("%i", "4242"))
    assert argv[1:3] == ["send", "--resume"] and unit["KillSignal"] == ["SIGINT"]
    env = base_env(tmp_path)
    env.update(PYTHONPATH=str(ROOT), TWIR_MAIL_SECRET_KEY=SECRET,
               TWIR_MAIL_DATABASE_URL=f"sqlite:///{tmp_path / 'twir-mail.db'}")
    assert subprocess.run([argv[0], "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True).returncode == 0
    res = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    # Options accepted (a usage error would exit 2); the campaign just does not exist here.
    assert (res.returncode, res.stderr.strip()) == (1, "error: no campaign with id 4242")


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    skip_unless(analyze is not None, "systemd-analyze not installed")
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace("/opt/twir-mail/.venv/bin", str(VENV_BIN))
        (tmp_path / unit.name.replace("@.", "@42.")).write_text(text)  # templates verify as an instance
    res = subprocess.run([analyze, "verify", *map(str, sorted(tmp_path.glob("*.service")))],
                         capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (res.stdout + res.stderr).splitlines()
                if "twir-mail" in ln and "not executable" not in ln]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr

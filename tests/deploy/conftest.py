"""Fixtures for the deployment tests: a moto server on loopback, an artifact zip, and a runner
for the real scripts/ against that server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("REAPER_VENV", Path.home() / ".cache/ec2-reaper/venv"))
ACCOUNT = "123456789012"  # moto's default account: the caller's own
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
# The secret the tests deploy with. Every script run by `run` is checked for it (and for its
# distinctive parts) in stdout and stderr: a script that prints it fails the test that ran it.
WEBHOOK = "https://hooks.slack.com/services/T0SECRET1/B0SECRET2/s3cr3tW3bh00kV4lue"
SECRET_MARKERS = [WEBHOOK, "T0SECRET1/B0SECRET2", "s3cr3tW3bh00kV4lue"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_command() -> list[str]:
    """moto_server through tests/deploy/moto_aws_semantics.py (two AWS behaviours moto lacks),
    run by the Python interpreter of the venv that holds moto."""
    candidates = [os.environ.get("MOTO_SERVER", ""), str(VENV / "bin/moto_server"), shutil.which("moto_server") or ""]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            python = Path(c).parent / "python"
            if not os.access(python, os.X_OK):
                pytest.fail(f"{c} has no python beside it to run moto_aws_semantics.py with", pytrace=False)
            return [str(python), str(Path(__file__).parent / "moto_aws_semantics.py")]
    pytest.fail(f"moto_server not found (tried MOTO_SERVER, {VENV}/bin, PATH): run `make venv`", pytrace=False)


@dataclass
class Moto:
    url: str
    pid: int

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", method="POST"), timeout=10).read()

    def client(self, service: str, region: str = "us-east-1"):
        return boto3.client(service, region_name=region, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing")


@pytest.fixture(scope="session")
def moto(tmp_path_factory) -> Moto:
    command = _moto_command()
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}; log:\n{log.read_text()}", pytrace=False)
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=2).read()
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server on {url} did not answer within 30 s; log:\n{log.read_text()}", pytrace=False)
            time.sleep(0.2)
    try:
        yield Moto(url=url, pid=proc.pid)
    finally:
        os.kill(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()


@dataclass
class Artifact:
    path: Path
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Artifact:
    """The real arm64 zip when REAPER_ZIP is set (CI), otherwise a small placeholder."""
    return _artifact(tmp_path_factory, "REAPER_ZIP")


@pytest.fixture(scope="session")
def actions_artifact(tmp_path_factory) -> Artifact:
    """The real arm64 reaper-actions zip when REAPER_ACTIONS_ZIP is set (CI), otherwise a placeholder."""
    return _artifact(tmp_path_factory, "REAPER_ACTIONS_ZIP")


def _artifact(tmp_path_factory, var: str) -> Artifact:
    real = os.environ.get(var)
    if real:
        p = Path(real)
        if not p.is_file():
            pytest.fail(f"{var}={real} does not exist", pytrace=False)
        print(f"\n[deploy tests] artifact: {var}={p}", file=sys.stderr)
        return Artifact(p, p.read_bytes())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'placeholder for tests/deploy; not the reaper'\nexit 1\n")
    p = tmp_path_factory.mktemp("artifact") / "bootstrap.zip"
    p.write_bytes(buf.getvalue())
    print(f"\n[deploy tests] artifact: {var} not set, using a PLACEHOLDER zip {p} "
          "(executable 'bootstrap' only)", file=sys.stderr)
    return Artifact(p, buf.getvalue())


def find_reaperctl() -> str:
    """The reaperctl scripts/deploy checks parameters with (reaperctl check-config): REAPERCTL,
    else this checkout's debug build, built once here when missing (the Makefile's test target
    has built it already)."""
    explicit = os.environ.get("REAPERCTL")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug/reaperctl"
    if not os.access(binary, os.X_OK):
        print(f"\n[deploy tests] building {binary} (cargo build --locked --workspace --bins)", file=sys.stderr)
        subprocess.run(["cargo", "build", "--quiet", "--locked", "--workspace", "--bins"], cwd=ROOT, check=True)
    return str(binary)


@dataclass
class Result:
    code: int
    out: str
    err: str


RUNS: list[tuple[str, tuple, Result]] = []


@pytest.fixture(scope="session")
def run(moto):
    """run(script, *args, env=None) -> Result: a real scripts/<script> against moto."""
    reaperctl = find_reaperctl()

    def _run(script: str, *args: str, env: dict | None = None, check: bool | None = None) -> Result:
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        e.update(CREDS)
        e.update({"AWS_ENDPOINT_URL": moto.url, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                  "REAPER_POLL_SECONDS": "0.2", "REAPER_VENV": str(VENV), "REAPERCTL": reaperctl,
                  "PATH": f"{VENV}/bin:{os.environ.get('PATH', '')}"})
        e.update(env or {})
        p = subprocess.run([str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                           env=e, cwd=ROOT, timeout=300)
        r = Result(p.returncode, p.stdout, p.stderr)
        RUNS.append((script, args, r))
        leaked = [i for i, m in enumerate(SECRET_MARKERS) if m in r.out or m in r.err]
        if leaked:
            # Never print the secret itself, not even here.
            pytest.fail(f"scripts/{script} printed the webhook secret (markers {leaked}) in its output")
        if check and r.code != 0:
            pytest.fail(f"scripts/{script} {' '.join(args)} exited {r.code}\nstdout:\n{r.out}\nstderr:\n{r.err}")
        return r

    return _run


def versioned(moto: Moto, prefix: str, regions: list[str]) -> None:
    """moto ignores the template's VersioningConfiguration (the deployed template is checked for
    it instead): turn versioning on as CloudFormation does on AWS, so object versions exist."""
    for region in regions:
        moto.client("s3", region).put_bucket_versioning(Bucket=f"{prefix}-{region}",
                                                        VersioningConfiguration={"Status": "Enabled"})


def stack_template(moto: Moto, stack_set: str, region: str) -> tuple[dict, dict]:
    """The template and parameters of the stack a StackSet instance created in region."""
    from cfnlint.decode import decode_str  # the same YAML reading cfn-lint uses (short tags)

    admin = moto.client("cloudformation", "us-east-1")  # where the StackSets live
    cf = moto.client("cloudformation", region)
    inst = [s for s in admin.list_stack_instances(StackSetName=stack_set)["Summaries"] if s["Region"] == region]
    assert len(inst) == 1, f"{stack_set}: expected one instance in {region}, got {inst}"
    stacks = [s for s in cf.describe_stacks()["Stacks"] if s["StackName"] == f"StackSet:{stack_set}"]
    assert len(stacks) == 1, f"{stack_set}: no stack in {region}"
    body = cf.get_template(StackName=stacks[0]["StackId"])["TemplateBody"]
    tpl, matches = decode_str(body if isinstance(body, str) else json.dumps(body))
    assert not matches, matches
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stacks[0].get("Parameters", [])}
    return tpl, params


def pytest_terminal_summary(terminalreporter):
    """Say which zip the deployment tests used, even under -q."""
    for var in ("REAPER_ZIP", "REAPER_ACTIONS_ZIP"):
        real = os.environ.get(var)
        if real:
            terminalreporter.write_line(f"tests/deploy artifact: {var}={real}")
        else:
            terminalreporter.write_line(f"tests/deploy artifact: {var} not set; used a PLACEHOLDER zip "
                                        "(an executable 'bootstrap' script), not the real arm64 build")

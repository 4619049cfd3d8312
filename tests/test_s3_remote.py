"""A DVC remote on S3, against a real S3 API: moto's server mode on 127.0.0.1, with its IAM
checks on (an access key it does not know, or a wrong secret, is refused as AWS refuses it).
DVC's S3 plugin does the pushing and pulling, as it would against AWS or MinIO."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

REASON = "the S3 extra is not installed: pip install -r requirements-s3.txt -c requirements.lock (make test does)"
pytest.importorskip("dvc_s3", reason=REASON)
pytest.importorskip("moto", reason=REASON)
boto3 = pytest.importorskip("boto3", reason=REASON)

from helpers.project import ROOT  # noqa: E402

BUCKET = "team"
ALLOW_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(module_tmp_path):
    """moto's S3 server on a free port of 127.0.0.1 with an IAM user allowed s3:* and a bucket;
    then its credential checks switched on (moto's reset-auth call: every request from then on
    must be signed with a key it knows)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(module_tmp_path / "moto.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (module_tmp_path / "moto.log").read_text()
                time.sleep(0.1)
        setup = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="ci")
        key = iam.create_access_key(UserName="ci")["AccessKey"]
        iam.put_user_policy(UserName="ci", PolicyName="s3", PolicyDocument=json.dumps(ALLOW_S3))
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"0", method="POST",
                                                      headers={"Content-Type": "text/plain"}))
        no_config = module_tmp_path / "aws-config"  # no ~/.aws: these credentials only
        no_config.write_text("")
        credentials = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                       "AWS_CONFIG_FILE": str(no_config), "AWS_SHARED_CREDENTIALS_FILE": str(no_config)}
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"])
        yield SimpleNamespace(url=url, credentials=credentials, client=client)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def env(credentials: dict) -> dict:
    """A user's environment: the venv first on PATH, these credentials, loopback past any proxy,
    a git identity."""
    return os.environ | credentials | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
        "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT),  # PYTHONPATH: python -m stages.tools.remote
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def sh(cmd: list[str], cwd: Path, credentials: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env(credentials), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def write_data(folder: Path, files: int, size: int) -> dict[str, bytes]:
    """`files` files of random bytes in `folder` (replacing what was there); their bytes by name."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    contents = {f"{i:04}.bin": os.urandom(size) for i in range(files)}
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    return contents


def dvc_here(repo: Path, *commands: list[str]) -> None:
    """DVC commands that do not reach S3, run in this process (each start of `dvc` costs about 2 s)."""
    from dvc.cli import main as dvc

    here = Path.cwd()
    os.chdir(repo)
    try:
        for args in commands:
            assert dvc(args) == 0, args
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def template(module_tmp_path, s3):
    """A git+DVC repository as a team has it: five files under data/ (dvc add), a stage that counts
    them into count.txt (run once), and the S3 bucket as its default remote, all committed.
    Every push, pull and status below runs `dvc` as a user would."""
    repo = module_tmp_path / "template"
    repo.mkdir()
    contents = write_data(repo / "data", files=5, size=2000)
    sh(["git", "init", "-q"], repo, {})
    dvc_here(repo, ["init", "-q"], ["add", "-q", "data"],
             ["stage", "add", "-q", "-n", "count", "-d", "data", "-o", "count.txt",
              "python -c \"import os; open('count.txt', 'w').write(str(len(os.listdir('data'))))\""],
             ["remote", "add", "-d", "s3", f"s3://{BUCKET}/shared"],
             ["remote", "modify", "s3", "endpointurl", s3.url])
    sh(["dvc", "repro", "-q"], repo, {})  # the stage's python: the venv's, first on PATH
    sh(["git", "add", "-A"], repo, {})
    sh(["git", "commit", "-q", "-m", "data, a stage and the S3 remote"], repo, {})
    return repo, contents


def keys(s3, prefix: str = "shared") -> set[str]:
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/")
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def copy_of(template, dest: Path) -> Path:
    shutil.copytree(template[0], dest, symlinks=True)
    return dest


def data_of(clone: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (clone / "data").iterdir()}


def test_push_from_one_clone_and_pull_into_a_fresh_one(tmp_path, s3, template):
    repo = copy_of(template, tmp_path / "repo")
    before = keys(s3)
    pushed = sh(["dvc", "push"], repo, s3.credentials)
    assert "7 files pushed" in pushed.stdout  # 5 files, data's listing, count.txt
    assert len(keys(s3) - before) == 7
    sh(["git", "clone", "-q", str(repo), "clone"], tmp_path, {})
    clone = tmp_path / "clone"
    pulled = sh([sys.executable, "-m", "stages.tools.remote", "pull"], clone, s3.credentials)  # checked, then dvc pull
    assert "7 files fetched" in pulled.stdout
    assert data_of(clone) == template[1] and (clone / "count.txt").read_text() == "5"
    assert sh(["dvc", "status"], clone, s3.credentials).stdout.strip() == "Data and pipelines are up to date."
    repro = sh(["dvc", "repro"], clone, s3.credentials).stdout
    assert "Running stage" not in repro and "Data and pipelines are up to date." in repro


def test_a_push_killed_halfway_completes_when_run_again_and_loses_nothing(tmp_path, s3, template):
    files = 120
    repo = copy_of(template, tmp_path / "repo")
    contents = write_data(repo / "data", files=files, size=3000)
    dvc_here(repo, ["add", "-q", "data"])
    sh(["dvc", "repro", "-q"], repo, {})  # count.txt: 120
    sh(["git", "commit", "-q", "-am", "more data"], repo, {})
    before = keys(s3)
    push = subprocess.Popen(["dvc", "push", "-j", "1"], cwd=repo, env=env(s3.credentials),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed as soon as the first objects are there
        deadline = time.monotonic() + 60
        while not keys(s3) - before and push.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        push.send_signal(signal.SIGKILL)
        push.wait()
    uploaded = len(keys(s3) - before)
    assert 0 < uploaded < files + 2, uploaded  # killed in the middle: some objects there, not all

    again = sh(["dvc", "push"], repo, s3.credentials)
    assert f"{files + 2 - uploaded} files pushed" in again.stdout  # the rest: files, data's listing, count.txt
    assert len(keys(s3) - before) == files + 2
    sh(["git", "clone", "-q", str(repo), "clone"], tmp_path, {})
    sh(["dvc", "pull"], tmp_path / "clone", s3.credentials)
    assert data_of(tmp_path / "clone") == contents  # every byte
    assert sh(["dvc", "status"], tmp_path / "clone", s3.credentials).stdout.strip() == "Data and pipelines are up to date."


def test_wrong_credentials_or_bucket_are_one_line_naming_the_problem(tmp_path, s3, template):
    repo = copy_of(template, tmp_path / "repo")
    unknown = dict(s3.credentials, AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE")
    wrong_secret = dict(s3.credentials, AWS_SECRET_ACCESS_KEY="not-the-secret")
    before = keys(s3)
    # DVC alone: "ERROR: unexpected error - Forbidden: An error occurred (403) when calling the
    # HeadObject operation: Forbidden" and a paragraph (a HEAD request's 403 has no body)
    plain = sh(["dvc", "push"], repo, unknown, check=False)
    assert plain.returncode != 0
    for command, credentials, why in (
        ("push", unknown, "The AWS Access Key Id you provided does not exist in our records."),
        ("pull", wrong_secret, "The request signature we calculated does not match the signature you provided. "
                               "Check your key and signing method."),
    ):
        result = sh([sys.executable, "-m", "stages.tools.remote", command], repo, credentials, check=False)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"error: remote s3 (s3://{BUCKET}/shared): {why}\n"
    assert keys(s3) == before  # nothing got through
    with open(repo / ".dvc" / "config.local", "w") as f:  # two more remotes: one never pushed to, one whose bucket is missing
        for name, url in (("fresh", f"s3://{BUCKET}/never-pushed"), ("elsewhere", "s3://no-such-bucket/birds")):
            f.write(f"['remote \"{name}\"']\n    url = {url}\n    endpointurl = {s3.url}\n")
    result = sh([sys.executable, "-m", "stages.tools.remote", "check", "-r", "fresh"], repo, s3.credentials)
    assert result.stdout == f"remote fresh (s3://{BUCKET}/never-pushed): reachable, the credentials accepted\n"
    result = sh([sys.executable, "-m", "stages.tools.remote", "check", "-r", "elsewhere"], repo, s3.credentials, check=False)
    assert (result.returncode, result.stderr) == (1, "error: remote elsewhere (s3://no-such-bucket/birds): The specified bucket does not exist\n")

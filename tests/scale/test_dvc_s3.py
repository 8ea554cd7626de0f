"""DVC with the stack's bucket as its S3 remote: push, forget everything local, pull back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import Stack

DVC = [sys.executable, "-m", "dvc"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_push_and_pull_through_the_stack_bucket(stack: Stack, tmp_path: Path) -> None:
    s = stack.settings
    # No AWS_* in the environment: the credentials come from the remote's local config only.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env.update(
        {
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
    )
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo, env)
    _run([*DVC, "init", "-q"], repo, env)
    _run([*DVC, "config", "core.analytics", "false"], repo, env)
    data = repo / "data.csv"
    content = "id,price\n" + "".join(f"{i},{1000 + i * 7}\n" for i in range(500))
    data.write_text(content)
    _run([*DVC, "add", "-q", "data.csv"], repo, env)
    url = f"s3://{s.bucket}/dvc-test"
    _run([*DVC, "remote", "add", "-d", "stack", url], repo, env)
    _run([*DVC, "remote", "modify", "stack", "endpointurl", s.s3_endpoint], repo, env)
    _run([*DVC, "remote", "modify", "--local", "stack", "access_key_id", s.access_key], repo, env)
    _run(
        [*DVC, "remote", "modify", "--local", "stack", "secret_access_key", s.secret_key], repo, env
    )
    _run([*DVC, "push", "-q"], repo, env)

    from opsline.stack import s3

    listed = s3.client(s).list_objects_v2(Bucket=s.bucket, Prefix="dvc-test/")
    assert listed.get("KeyCount", 0) >= 1

    shutil.rmtree(repo / ".dvc" / "cache")
    data.unlink()
    _run([*DVC, "pull", "-q"], repo, env)
    assert data.read_text() == content
    # The secret stayed out of the versioned config.
    assert s.secret_key not in (repo / ".dvc" / "config").read_text()

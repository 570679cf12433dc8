"""Acceptance (issue 19): the README's quick start works as written: its block is run with bash,
against the built binary, from the repository's root."""

import os
import re
import socket
import subprocess

import pytest

from conftest import BINARY, ROOT


def quick_start_block():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def port_in_use(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_quick_start_runs_as_written():
    if any(port_in_use(p) for p in (4317, 4318, 13133, 8888)):
        pytest.skip("the quick start's standard ports are taken on this machine")
    env = dict(os.environ, PATH=f"{BINARY.parent}:{os.environ['PATH']}")
    env.pop("AOT_CONFIG_CONTENT", None)
    result = subprocess.run(["bash", "-e", "-c", quick_start_block() + "\nwait\n"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"1000 items in .* 0 failed", result.stdout), result.stdout
    assert "STATUS: 200" in result.stdout
    assert re.search(r"exporter=debug resources=\d+ items=1000 Traces", result.stderr), result.stderr
    assert not any(port_in_use(p) for p in (4317, 4318, 13133)), "the sidecar stopped"

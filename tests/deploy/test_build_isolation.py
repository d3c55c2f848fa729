"""Two checkouts share the dependency build, never the binaries (the Makefile's build layout).

Every checkout builds into its own target dir; the dependencies come from one shared cargo
build-dir. Before this layout, both checkouts shared one target dir and cargo judged freshness by
file times: a checkout cloned before another one's build looked up to date and ran the *other*
checkout's binary. Here two clones are made first and built one after the other, exactly that
order, and each binary must say it was built from its own checkout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = os.environ.get("CARGO_BUILD_BUILD_DIR") or str(Path.home() / ".cache/ec2-reaper/build")


def _clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    return dest


def _build(checkout: Path) -> str:
    env = dict(os.environ, CARGO_BUILD_BUILD_DIR=BUILD_DIR, CARGO_TARGET_DIR=str(checkout / "target"))
    done = subprocess.run(
        ["cargo", "build", "--workspace", "--bins", "--locked"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, f"cargo build failed in {checkout}:\n{done.stderr[-4000:]}"
    return done.stderr


def _built_from(checkout: Path) -> str:
    out = subprocess.run(
        [str(checkout / "target/debug/reaperctl"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("built from: ")]
    assert lines, f"reaperctl --version names no checkout:\n{out}"
    return lines[0].removeprefix("built from: ").removesuffix("/.")


def test_two_clones_built_one_after_the_other_each_run_their_own_binary(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("the build-isolation test clones the repository: run it from a git checkout")
    first = _clone(tmp_path / "first")
    second = _clone(tmp_path / "second")  # cloned before `first` builds: its files look older
    _build(first)
    second_log = _build(second)

    assert _built_from(first) == str(first)
    assert _built_from(second) == str(second)
    # The binaries are each checkout's own files, not one shared path.
    assert (first / "target/debug/reaperctl").stat().st_ino != (second / "target/debug/reaperctl").stat().st_ino
    # ... and the dependencies really are shared: the second build compiled only the workspace.
    compiled = [line.split()[1] for line in second_log.splitlines() if line.strip().startswith("Compiling ")]
    assert set(compiled) <= {"reaper", "reaper-e2e"}, f"the second checkout rebuilt dependencies: {compiled}"

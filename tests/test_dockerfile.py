"""The Dockerfile: hadolint clean, and still a plain `docker build .` where a registry answers.

The image itself is built and run for real in tests/test_image.py (image/build.sh, no registry).
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_passes() -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("hadolint")), str(DOCKERFILE)], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_plain_build_starts_from_python_slim_and_needs_no_buildkit_frontend() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    named = {name for _, name in stages if name}
    assert all(image == "${BASE}" or image in named for image, _ in stages), stages
    assert not re.search(r"^# *syntax *=", text, re.M | re.I)  # BuildKit would pull the frontend image it names

"""The Dockerfile: hadolint clean, and the install commands of its build stage work in a fresh venv.

No Docker engine runs here: the build stage's COPY and RUN steps are replayed in a temporary folder, with
the image's /opt/eoflows replaced by a temporary venv.
"""

import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def build_stage() -> list[tuple[str, str]]:
    """(instruction, arguments) of the first stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages = re.split(r"^FROM ", text, flags=re.M)
    lines = [line.strip() for line in stages[1].splitlines()[1:] if line.strip() and not line.startswith("#")]
    return [tuple(line.split(" ", 1)) for line in lines]


def test_hadolint_passes() -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("hadolint")), str(DOCKERFILE)], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def replay_build_stage(workdir: Path) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """Replay the build stage's COPY and RUN steps in `workdir`; the venv made and the RUN results."""
    src, venv = workdir / "src", workdir / "opt-eoflows"
    src.mkdir(parents=True)
    runs = []
    for kind, args in build_stage():
        if kind == "COPY":
            *sources, dest = shlex.split(args)
            for source in sources:
                target = (src / dest) if dest.endswith("/") or len(sources) > 1 else src / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, src / dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, target / source if dest.endswith("/") else target)
        elif kind == "RUN":
            command = args.replace("/opt/eoflows", str(venv)).replace("python -m venv", f"{sys.executable} -m venv")
            runs.append(subprocess.run(["bash", "-c", command], cwd=src, capture_output=True, text=True, timeout=900))
            if runs[-1].returncode:
                break
    return venv, runs


#: The replay takes minutes of pip: started in the background when this test is collected (tests/conftest.py).
IMAGE_BUILD: dict[str, Future] = {}


def start_image_build(workdir: Path) -> None:
    """Start the replay in a background thread."""
    IMAGE_BUILD["replay"] = ThreadPoolExecutor(1, thread_name_prefix="image-build").submit(replay_build_stage, workdir)


def test_the_image_build_installs_eoflows_in_a_fresh_venv(tmp_path: Path) -> None:
    if "replay" not in IMAGE_BUILD:  # run alone, without the collection hook
        start_image_build(tmp_path / "image")
    venv, runs = IMAGE_BUILD["replay"].result(timeout=1200)
    assert [kind for kind, _ in build_stage()].count("RUN") >= 1 and runs
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([str(venv / "bin" / "eoflows"), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "0.1.0", done.stderr
    probe = "import flows.packages, deployments.kubernetes, tasks.remote.gateway, prefect_kubernetes, dask_gateway"
    assert subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True).returncode == 0
    # the image has no test tools: the dev extra is not installed
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import moto"], capture_output=True).returncode != 0
    shutil.rmtree(venv.parent, ignore_errors=True)

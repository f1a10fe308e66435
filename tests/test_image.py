"""The Docker image, built for real with no registry (image/build.sh, tests/containers.py).

Built on a base made locally from Debian's packages, with nothing pulled and nothing downloaded in the build; it
runs as any non-root uid with a read-only root file system and an unwritable HOME, as Calrissian and
OpenShift-style clusters run steps; it holds none of the test tools; a rebuild with nothing changed runs no step.
"""

import json
import os
import re
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest
import rasterio

from eoflows.samples.landsat import write_landsat
from tests.containers import ROOT, build, first_build, tag_of

pytestmark = pytest.mark.timeout(1800)  # the first build on a fresh machine takes minutes

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
BASE = os.environ.get("EOFLOWS_BASE", "eoflows-base:bookworm")
#: How a cluster may run a step: an arbitrary uid of group 0, a read-only root, HOME not writable, /tmp a tmpfs.
CLUSTER = ["--read-only", "--user", "12345:0", "-e", "HOME=/nonexistent", "--tmpfs", "/tmp"]


def docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def inspect(ref: str) -> dict:
    done = docker("image", "inspect", ref)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


def canonical(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group()).lower()


def test_the_image_is_built_on_the_local_base_with_nothing_pulled(image: str) -> None:
    base, built = inspect(BASE), inspect(image)
    assert len(base["RootFS"]["Layers"]) == 1 and "debootstrap" in base["Comment"]  # docker import of a rootfs
    assert built["RootFS"]["Layers"][0] == base["RootFS"]["Layers"][0]
    log = first_build().stderr
    assert "docker build --network none" in log and "Pulling" not in log
    assert built["Config"]["User"] == "1000:1000"
    assert built["Config"]["Labels"]["org.opencontainers.image.version"] == VERSION


def test_a_rebuild_with_nothing_changed_runs_no_step(image: str) -> None:
    before = inspect(image)["Id"]
    done = build()
    assert tag_of(done) == image
    log = done.stderr
    assert f"{BASE} is in the engine: no debootstrap" in log and "is cached: no download" in log
    steps = re.split(r"^Step \d+/\d+ : ", log, flags=re.M)[1:]
    # each step but FROM and the ARG before it comes from the layer cache: nothing installed or copied again
    ran = [step for step in steps if " ---> " in step and not step.startswith("FROM ")]
    rebuilt = [step.split("\n")[0] for step in ran if "Using cache" not in step]
    assert len(ran) > 10 and not rebuilt, rebuilt
    assert inspect(image)["Id"] == before


def test_it_runs_as_any_uid_with_a_read_only_root_and_an_unwritable_home(image: str) -> None:
    assert docker("run", "--rm", image, "id", "-u").stdout.strip() == "1000"
    done = docker("run", "--rm", *CLUSTER, image, "eoflows", "--version")
    assert done.returncode == 0 and done.stdout.strip() == VERSION, done.stderr
    done = docker("run", "--rm", *CLUSTER, image, "eoflows", "step", "s2-indices", "compute", "--help")
    assert done.returncode == 0 and "Usage: eoflows step s2-indices compute" in done.stdout, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_a_downsample_step_writes_its_output_and_nothing_else(image: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    band, _ = write_landsat(data / "source", width=120, height=100)
    data.chmod(0o777)  # the container's uid writes there; umask 0: the host's user can remove what it wrote
    steps = (
        "umask 0 && mkdir /data/published"  # a step publishes into an existing folder
        f" && eoflows step downsample stage-in --url /data/source/{band.name} --output /data/staged"
        " && eoflows step downsample compute --input /data/staged --output /data/out --width 40"
        " && eoflows step downsample stage-out --input /data/out --destination /data/published --run-id r1"
    )
    done = docker("run", "--rm", *CLUSTER, "-v", f"{data}:/data", image, "sh", "-c", steps)
    assert done.returncode == 0, done.stderr
    (tif,) = (data / "out").glob("*/*.TIF")
    with rasterio.open(tif) as out:
        assert (out.width, out.height) == (40, 33)
    assert (data / "published" / "r1" / "catalog.json").is_file()
    # with a root file system it could write to, and its own writable HOME, a step changes nothing but its output
    name = f"eoflows-test-{uuid.uuid4().hex[:8]}"
    compute = "umask 0 && eoflows step downsample compute --input /data/staged --output /data/again"
    assert docker("create", "--name", name, "-v", f"{data}:/data", image, "sh", "-c", compute).returncode == 0
    try:
        done = docker("start", "--attach", name)
        assert done.returncode == 0, done.stderr
        assert docker("diff", name).stdout.split("\n")[:-1] == ["A /data"]  # the mount point, nothing else
    finally:
        docker("rm", "--force", name)
    assert list((data / "again").glob("*/*.TIF"))


def test_a_step_runs_with_home_unset(image: str) -> None:
    """An arbitrary uid without a passwd entry and no HOME: the step gets a private home (eoflows.prefect_home)."""
    command = ["env", "-u", "HOME", "eoflows", "step", "downsample", "compute", "--help"]
    done = docker("run", "--rm", *CLUSTER, image, *command)
    assert done.returncode == 0, done.stderr


def test_the_image_holds_nothing_of_the_dev_extra(image: str) -> None:
    done = docker("run", "--rm", image, "python", "-m", "pip", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    installed = {canonical(dist["name"]) for dist in json.loads(done.stdout)}
    extras = PYPROJECT["project"]["optional-dependencies"]
    dev = {canonical(requirement) for name in ("dev", "testing") for requirement in extras[name]}
    dev -= {"eoflows", "setuptools"}  # the dev extra's own extra; setuptools builds eoflows' wheel in the image
    assert {"eoflows", "prefect", "rasterio"} <= installed and len(dev) > 10
    assert not installed & dev


#: Every system library that a shared object of the venv needs and that no wheel brings (manylinux wheels bring
#: their own in <package>.libs/, loaded through the extension's RPATH, so `ldd` alone misses those).
MISSING_LIBRARIES = """
import json, pathlib, re, subprocess
files = [p for p in pathlib.Path("/opt/eoflows").rglob("*.so*") if p.is_file()]
bundled = {p.name for p in files}
missing = {}
for f in files:
    for name in re.findall(r"^\\s*(\\S+) => not found", subprocess.run(["ldd", str(f)], capture_output=True,
                                                                     text=True).stdout, re.M):
        if name not in bundled:
            missing.setdefault(name, []).append(str(f))
print(json.dumps({"shared objects": len(files), "missing": missing}))
"""


def test_the_base_has_every_system_library_the_wheels_need(image: str) -> None:
    done = docker("run", "--rm", image, "python", "-c", MISSING_LIBRARIES)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["shared objects"] > 100 and found["missing"] == {}


def test_make_image_extra_installs_packages_of_ones_own(
    image: str, burn_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """EXTRA: a package folder becomes a wheel, a dependency the image lacks is downloaded on the host, both are
    installed; in the image, `eoflows packages` lists the package and its steps run there."""
    from eoflows.cli import main

    assert main(["new", "package", "ndmi-demo", "--dest", str(tmp_path / "ndmi-demo")]) == 0
    pyproject = tmp_path / "ndmi-demo" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('dependencies = ["eoflows"]', 'dependencies = ["eoflows", "tomli-w>=1.0,<2"]')
    )
    tag = f"eoflows-extra-test:{uuid.uuid4().hex[:8]}"
    done = build(EXTRA=str(tmp_path / "ndmi-demo"), EOFLOWS_IMAGE=tag)
    assert tag_of(done) == tag
    try:
        assert re.search(r"extra packages ndmi_demo-0\.1\.0-py3-none-any\.whl \(downloaded: tomli_w-", done.stderr)
        listed = docker("run", "--rm", *CLUSTER, tag, "eoflows", "packages", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["name"]: row["status"] for row in json.loads(listed.stdout)}
        assert rows == {
            "s2-indices": "ok",
            "burned-area": "ok",
            "downsample": "ok",
            "downsample-notebook": "ok",
            "ndmi-demo": "ok",
        }
        data = tmp_path / "data"
        data.mkdir(mode=0o777)
        data.chmod(0o777)
        sample = tmp_path / "sample"  # readable by the container's uid, whatever the fixture's umask was
        shutil.copytree(burn_pair[1].parent, sample)
        for path in [sample, *sample.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        post = f"/sample/{burn_pair[1].name}"
        steps = (f"umask 0 && python -c 'import tomli_w' && eoflows step ndmi-demo stage-in --item {post} --output "
                 "/data/staged && eoflows step ndmi-demo compute --input /data/staged --output /data/out")  # fmt: skip
        done = docker("run", "--rm", *CLUSTER, "-v", f"{sample}:/sample:ro", "-v", f"{data}:/data", tag,
                      "sh", "-c", steps)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        (cog,) = (data / "out").glob("*/*.tif")
        with rasterio.open(cog) as src:
            assert src.dtypes == ("float32",) and src.width == src.height
    finally:
        docker("image", "rm", "--force", tag)

"""The wheelhouse of the image: every wheel it installs, downloaded on the host, so that the build downloads nothing.

    python3 image/wheelhouse.py CACHE BASE    prints the wheelhouse folder (CACHE/wheels-<key>), downloaded if missing
    python3 image/wheelhouse.py --extra BASE WHEELHOUSE DEST
                                              adds to DEST what the package wheels in DEST need beyond WHEELHOUSE
    python3 image/wheelhouse.py --site CACHE BASE REQUIREMENT...
                                              prints a folder (CACHE/site-<key>) of REQUIREMENT installed for BASE

The wheels are for the python3 of the base image BASE (CPython 3.11 on Debian bookworm's glibc, x86_64), which
is asked for its marker environment once (`docker run --network none`). The host's pip downloads them (its
configuration: index, certificates, proxies), with `--python-version`, `--abi` and `--platform` naming the image's
tags. pip evaluates environment markers against the interpreter that runs it, not the target (redis needs
async-timeout only on `python_full_version < "3.11.3"`: Debian's 3.11.2 does, a host's 3.11.7 does not), so pip
runs with the image's marker environment in place of its own (PIP_SHIM).

The key is a hash of what decides the wheels: the dependencies of pyproject.toml (not the `dev` or `bench`
extras), its build requirements, and the image's environment. The folder holds the wheels and
`requirements.txt`, the dependencies pinned to the versions downloaded (one resolution, so the image installs
exactly these). Wheels only (`--only-binary=:all:`): nothing is compiled, and no compiler is needed in the image.
The folder is made under a temporary name and renamed when complete, so an interrupted download is never taken
for a wheelhouse.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Installed before the dependencies (the image's venv starts with the base's pip: 23.0 on Debian bookworm).
PIP = "pip>=24"
#: Wheelhouses kept in the cache (the newest: a checkout on other dependencies does not download again).
KEEP = 3
#: What the image's python3 prints: its marker environment (PEP 508, as `packaging.markers` builds it) and glibc.
PROBE = """
import json, os, platform, sys
v = sys.implementation.version
full = f"{v.major}.{v.minor}.{v.micro}" + ("" if v.releaselevel == "final" else f"{v.releaselevel[0]}{v.serial}")
print(json.dumps({
    "implementation_name": sys.implementation.name, "implementation_version": full, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    "glibc": platform.libc_ver()[1],
}))
"""
#: pip with the marker environment given as its first argument in place of the running interpreter's.
PIP_SHIM = """
import json, sys
from pip._vendor.packaging import markers
target = json.loads(sys.argv.pop(1))
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main())
"""


def image_environment(base: str) -> dict[str, str]:
    """The marker environment and glibc version of the python3 of image `base`."""
    command = ["docker", "run", "--rm", "--network", "none", base, "python3", "-c", PROBE]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def target_options(env: dict[str, str]) -> list[str]:
    """pip's options naming the image's interpreter and every manylinux tag its glibc accepts.

    pip matches a wheel's tags exactly: glibc 2.36 accepts manylinux_2_36 down to manylinux_2_5 (alias manylinux1).
    """
    if (env["implementation_name"], env["sys_platform"]) != ("cpython", "linux"):
        raise SystemExit(f"image/wheelhouse.py: the base's python3 is not CPython on Linux: {env}")
    major, minor = (int(part) for part in env["glibc"].split(".")[:2])
    machine = env["platform_machine"]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    platforms += [f"{legacy[m]}_{machine}" for m in legacy if m <= minor]
    abi = "cp" + env["python_version"].replace(".", "")
    return [f"--python-version={env['python_full_version']}", "--implementation=cp", f"--abi={abi}"] + [
        f"--platform={platform}" for platform in platforms
    ]


def inputs(pyproject: Path, env: dict[str, str]) -> dict:
    """What decides the wheels: the dependencies, the build requirements, the pip wanted, the image's environment.

    The environment less the kernel's release and version (the host's, not the image's).
    """
    data = tomllib.loads(pyproject.read_text())
    return {
        "dependencies": data["project"]["dependencies"],
        "build": data["build-system"]["requires"],
        "pip": PIP,
        "environment": {k: v for k, v in env.items() if k not in ("platform_release", "platform_version")},
    }


def pins(folder: Path) -> list[str]:
    """`name==version` of every wheel in `folder`, from the file names (PEP 427), sorted."""
    names = []
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        names.append(f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}")
    return names


def pip_for(env: dict[str, str], action: str, dest: Path, requirements: list[str]) -> None:
    """Run pip `action` (download, install) of the wheels of `requirements` for the image into `dest`."""
    markers = json.dumps({k: v for k, v in env.items() if k != "glibc"})
    command = [sys.executable, "-c", PIP_SHIM, markers, action, "--only-binary=:all:", *target_options(env)]
    where = ["--dest", str(dest)] if action == "download" else ["--target", str(dest)]
    subprocess.run([*command, *where, "--quiet", "--disable-pip-version-check", *requirements], check=True)


def download(requirements: list[str], env: dict[str, str], dest: Path) -> None:
    """`pip download` the wheels of `requirements` (and of their dependencies) for the image into `dest`."""
    pip_for(env, "download", dest, requirements)


def site(cache: Path, base: str, requirements: list[str]) -> Path:
    """A folder of `requirements` installed for the python3 of image `base` (for its PYTHONPATH), cached.

    For tools run in a base image without a build (tests/test_gdal_reads.py: rasterio and odc-stac in Debian trixie).
    """
    env = image_environment(base)
    wanted = {"requirements": requirements, "environment": inputs(ROOT / "pyproject.toml", env)["environment"]}
    folder = cache / f"site-{hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache))
    try:
        print(f"image/wheelhouse.py: installing {' '.join(requirements)} into {folder.name}", file=sys.stderr)
        wheels = partial / ".wheels"
        download(requirements, env, wheels)  # resolved for the image; pip install would check the host's python
        pip_for(env, "install", partial, ["--no-deps", "--ignore-requires-python", *map(str, wheels.glob("*.whl"))])
        shutil.rmtree(wheels)
        partial.chmod(0o755)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def wheelhouse(cache: Path, base: str, pyproject: Path = ROOT / "pyproject.toml") -> Path:
    """The wheelhouse folder for `pyproject` and image `base`: from the cache, else downloaded now."""
    env = image_environment(base)
    wanted = inputs(pyproject, env)
    folder = cache / f"wheels-{hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]}"
    if (folder / "requirements.txt").is_file():
        print(f"image/wheelhouse.py: {folder.name} is cached: no download", file=sys.stderr)
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache))
    try:
        print(f"image/wheelhouse.py: downloading {folder.name} (pip download)", file=sys.stderr)
        download(wanted["dependencies"], env, partial)
        dependencies = pins(partial)
        # pip, and what pip needs to build eoflows' own wheel in the image (build isolation, offline)
        download([wanted["pip"], *wanted["build"]], env, partial)
        (partial / "requirements.txt").write_text(
            "# the image's dependencies, as resolved by image/wheelhouse.py\n" + "\n".join(dependencies) + "\n"
        )
        partial.chmod(0o755)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for old in sorted(cache.glob("wheels-*"), key=lambda path: path.stat().st_mtime)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)  # the wheelhouses of older dependencies
    return folder


def requirements_of(wheel: Path) -> list[str]:
    """The `Requires-Dist` of a wheel that are not for one of its extras (markers kept: pip evaluates them)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    wanted = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in wanted if not re.search(r"\bextra\s*==", r)]


def extra_wheels(base: str, wheelhouse_folder: Path, dest: Path) -> list[str]:
    """Download into `dest` the wheels that the package wheels in `dest` need and the image lacks; their names.

    eoflows itself is in the image; the other dependencies are resolved with the wheelhouse's versions as
    constraints (one version of each package in the image), and what the wheelhouse holds is not downloaded again.
    """
    wanted = [r for wheel in sorted(dest.glob("*.whl")) for r in requirements_of(wheel)
              if re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r).group(0)).lower() != "eoflows"]  # fmt: skip
    if not wanted:
        return []
    have = {wheel.name for wheel in wheelhouse_folder.glob("*.whl")}
    with tempfile.TemporaryDirectory() as folder:
        download([*wanted, "--constraint", str(wheelhouse_folder / "requirements.txt")], image_environment(base),
                 Path(folder))  # fmt: skip
        added = [wheel for wheel in Path(folder).glob("*.whl") if wheel.name not in have]
        for wheel in added:
            shutil.move(wheel, dest / wheel.name)
    return sorted(wheel.name for wheel in added)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--extra"] and len(sys.argv) == 5:
        print(" ".join(extra_wheels(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
    elif sys.argv[1:2] == ["--site"] and len(sys.argv) > 4:
        print(site(Path(sys.argv[2]), sys.argv[3], sys.argv[4:]))
    elif len(sys.argv) == 3:
        print(wheelhouse(Path(sys.argv[1]), sys.argv[2]))
    else:
        sys.exit(__doc__.split("\n\n")[1])

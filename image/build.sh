#!/usr/bin/env bash
# Build the eoflows image from the root Dockerfile with no registry: nothing pulled, nothing downloaded in the build.
# Its tag is the name deployments run, eoflows.IMAGE (ghcr.io/eoflows/eoflows:<version>): the Docker pool finds
# it in the engine and pulls nothing; `docker push` publishes it. EOFLOWS_IMAGE=NAME builds another name (then
# `eoflows deploy --image NAME`).
#
#   image/build.sh          (make image; prints the tag on stdout, the steps on stderr)
#   EXTRA="path/to/my-package other.whl" image/build.sh      (make image EXTRA="..."): with more packages
#
# 1. image/base.sh: the base image, Debian bookworm made locally with debootstrap (skipped when the engine has it);
# 2. image/wheelhouse.py: every wheel the image installs, downloaded on the host (skipped when cached);
# 3. docker build with the legacy builder (BuildKit would pull its frontend image) and no network, the wheelhouse
#    in the build context (image/wheels/, emptied again afterwards: a plain `docker build .` uses PyPI).
# 4. EXTRA: application packages of one's own installed into the image too (`eoflows packages` lists them): a
#    folder is built into a wheel by the host's pip, a .whl is taken as it is; what they need beyond the image's
#    wheelhouse is downloaded on the host (image/wheelhouse.py --extra), and all of it goes into image/extra/.
#    Give EOFLOWS_IMAGE a tag of its own for such an image.
# Caches live in EOFLOWS_IMAGE_CACHE (default ~/.cache/eoflows/image), layers in the engine: a rebuild with
# nothing changed takes seconds, and a change of the source alone reinstalls no dependency. PYTHON (default
# python3: 3.11 or newer, with pip) runs the download. One build at a time (a lock in the cache).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export EOFLOWS_IMAGE_CACHE=${EOFLOWS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/eoflows/image}
mkdir -p "$EOFLOWS_IMAGE_CACHE"
exec 9>"$EOFLOWS_IMAGE_CACHE/build.lock"
flock 9

version=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$ROOT/pyproject.toml")
repository=$(sed -n 's/^IMAGE_REPOSITORY = "\(.*\)"$/\1/p' "$ROOT/eoflows/__init__.py")  # eoflows.IMAGE's
[ -n "$repository" ] || { echo "image/build.sh: no IMAGE_REPOSITORY in eoflows/__init__.py" >&2; exit 1; }
tag=${EOFLOWS_IMAGE:-$repository:$version}

base=$("$ROOT/image/base.sh")
wheels=$("$PYTHON" "$ROOT/image/wheelhouse.py" "$EOFLOWS_IMAGE_CACHE" "$base")

# the wheelhouse into the build context (hard links when the cache is on the same file system), with the pip
# configuration that keeps pip off the network; the Dockerfile puts them in /wheels
context=$ROOT/image/wheels
extra=$ROOT/image/extra
empty_context() { find "$context" "$extra" -mindepth 1 ! -name README.md -delete; }
trap empty_context EXIT
empty_context
cp --link "$wheels"/* "$context"/ 2>/dev/null || cp "$wheels"/* "$context"/
printf '[global]\nno-index = true\nfind-links = /wheels\n' >"$context/pip.conf"

for package in ${EXTRA:-}; do
    case $package in
    *.whl) cp "$package" "$extra"/ ;;
    *) [ -d "$package" ] || { echo "image/build.sh: EXTRA $package: not a folder or a .whl file" >&2; exit 1; }
       "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$extra" "$package" >&2 ;;
    esac
done
if [ -n "${EXTRA:-}" ]; then
    packages=$(cd "$extra" && ls *.whl | tr '\n' ' ')
    added=$("$PYTHON" "$ROOT/image/wheelhouse.py" --extra "$base" "$wheels" "$extra")
    echo "image/build.sh: extra packages ${packages}(downloaded: ${added:-nothing})" >&2
fi

echo "image/build.sh: docker build --network none -t $tag (base $base, $(basename "$wheels"))" >&2
DOCKER_BUILDKIT=0 docker build --network none \
    --build-arg BASE="$base" --build-arg VERSION="$version" --tag "$tag" "$ROOT" >&2
echo "$tag"

#!/usr/bin/env bash
# The base image when no registry answers: Debian bookworm made from Debian's packages (debootstrap), imported
# into the engine as eoflows-base:bookworm. Its python3 is CPython 3.11, like python:3.11-slim's.
#
#   image/base.sh            prints the tag; does nothing when the engine already has it
#   EOFLOWS_BASE_SUITE=trixie image/base.sh      another Debian release (eoflows-base:trixie, CPython 3.13), as
#                            tests/test_gdal_reads.py uses for GDAL >= 3.11 (rasterio 1.5 needs Python >= 3.12)
#
# The root file system is kept as a tarball in the cache (EOFLOWS_IMAGE_CACHE, default ~/.cache/eoflows/image),
# so an engine that lost the image gets it back without debootstrap. Needs root (debootstrap and chroot);
# installs debootstrap with apt-get when missing.
set -euo pipefail

SUITE=${EOFLOWS_BASE_SUITE:-bookworm}
TAG=${EOFLOWS_BASE:-eoflows-base:$SUITE}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-venv: the venv of the image (ensurepip); the wheels need nothing else (manylinux: they bring their
# own libraries and use only glibc, libstdc++, libgcc_s and zlib, all in minbase)
PACKAGES=python3,python3-venv,ca-certificates
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${EOFLOWS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/eoflows/image}

log() { echo "image/base.sh: $*" >&2; }

mkdir -p "$CACHE"
exec 8>"$CACHE/base.lock"  # one at a time (apt-get and debootstrap, whatever the suite)
flock 8

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG is in the engine: no debootstrap"
    echo "$TAG"
    exit 0
fi

key=$(printf '%s\n' "$SUITE" "$PACKAGES" "$(uname -m)" | sha256sum | cut -c1-12)
tarball=$CACHE/rootfs-$SUITE-$key.tar
if [ -s "$tarball" ]; then
    log "importing the cached root file system $tarball: no debootstrap"
else
    if [ "$(id -u)" != 0 ]; then
        log "debootstrap needs root: run as root (or import $tarball made elsewhere)"
        exit 1
    fi
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
    fi
    rootfs=$(mktemp -d "$CACHE/rootfs-XXXXXX")
    cleanup() {  # an interrupted debootstrap may leave /proc and /sys mounted in the rootfs: never remove through them
        for mount in proc sys dev/pts dev; do
            ! mountpoint -q "$rootfs/$mount" || umount --lazy "$rootfs/$mount" || true
        done
        rm -rf --one-file-system "$rootfs" "$tarball.tmp"
    }
    trap cleanup EXIT
    log "debootstrap $SUITE ($PACKAGES) from $MIRROR"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
    # what an image does not need: downloaded packages, package lists, documentation, translations
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
fi
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE" \
    "$tarball" "$TAG" >&2
echo "$TAG"

#!/bin/sh
# Sets up a real Blender window for tests/window: Debian trixie's blender (4.3, Python 3.13) in a
# debootstrap chroot, with Xvfb, xdotool and ImageMagick, cached outside the repository.
#
# Contract with the caller (tests/window/conftest.py):
#   prints the chroot's path on the last line of stdout and exits 0 when it is ready;
#   exits 3 with one line "skip: <reason>" on stderr when this machine cannot set it up
#   (not root, no debootstrap and it cannot be installed, no access to the Debian archive,
#   no right to mount);
#   any other status is a failure of the set-up itself (its log says which step).
# Idempotent: a marker file records a complete set-up, so a second run only re-checks the mounts.
# The tests unmount when they end (`sh tests/window/setup.sh unmount`); run it yourself before
# deleting the cache after an interrupted run (/tmp and /dev of the host are bound inside it).
#
# FACE_NORMALS_WINDOW_CACHE  where the chroot lives (default /var/cache/face-normals-window)
# FACE_NORMALS_WINDOW_MIRROR the Debian archive (default http://deb.debian.org/debian)
set -eu

CACHE=${FACE_NORMALS_WINDOW_CACHE:-/var/cache/face-normals-window}
MIRROR=${FACE_NORMALS_WINDOW_MIRROR:-http://deb.debian.org/debian}
ROOT=$CACHE/trixie
PACKAGES="blender xvfb xauth xdotool imagemagick libgl1-mesa-dri python3-numpy"
MARKER=$ROOT/.face-normals-window-ready

skip() { echo "skip: $*" >&2; exit 3; }

mount_all() {
    for dir in proc sys dev tmp; do
        mkdir -p "$ROOT/$dir"
        if ! mountpoint -q "$ROOT/$dir"; then
            if [ "$dir" = proc ]; then
                mount -t proc proc "$ROOT/proc" || skip "cannot mount proc in the chroot (no CAP_SYS_ADMIN?)"
            else
                mount --rbind "/$dir" "$ROOT/$dir" || skip "cannot bind-mount /$dir into the chroot (no CAP_SYS_ADMIN?)"
            fi
        fi
    done
}

if [ "${1:-}" = unmount ]; then
    for dir in tmp dev sys proc; do
        if mountpoint -q "$ROOT/$dir" 2>/dev/null; then umount -R "$ROOT/$dir"; fi
    done
    exit 0
fi

[ "$(id -u)" = 0 ] || skip "not root (debootstrap and the chroot's mounts need root)"

# one set-up at a time (several test runs may share the cache)
mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9
fi

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$PACKAGES" ]; then
    mount_all
    echo "$ROOT"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || skip "no debootstrap, and no apt-get to install it"
    echo "installing debootstrap on the host" >&2
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; } >&2 \
        || skip "no debootstrap, and apt-get could not install it"
fi

# the archive must answer before a long debootstrap is started
if command -v python3 >/dev/null 2>&1; then
    python3 - "$MIRROR/dists/trixie/Release" <<'PY' || skip "no access to the Debian archive at $MIRROR"
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=20).read(64)
except Exception as error:
    print(error, file=sys.stderr)
    sys.exit(1)
PY
fi

if [ ! -x "$ROOT/usr/bin/apt-get" ] || [ ! -f "$ROOT/.debootstrap-done" ]; then
    echo "debootstrap trixie into $ROOT" >&2
    # a half-made tree from an interrupted run is started again
    for dir in proc sys dev tmp; do
        if mountpoint -q "$ROOT/$dir" 2>/dev/null; then umount -R "$ROOT/$dir"; fi
    done
    rm -rf "$ROOT"
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >&2
    touch "$ROOT/.debootstrap-done"
fi

mount_all
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
echo "apt-get install $PACKAGES" >&2
chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    "apt-get update -q && apt-get install -y -q $PACKAGES && apt-get clean" >&2
chroot "$ROOT" blender --version >&2
echo "$PACKAGES" > "$MARKER"
echo "$ROOT"

#!/usr/bin/env bash
# Inside a private mount namespace (testing-root.sh's in_testing_root): mount
# what a chroot needs, then run the command in the checkout inside the root.
# Usage: enter-testing-root.sh ROOT CHECKOUT [NAME=VALUE ...] -- COMMAND...
set -euo pipefail
root=$1 checkout=$2
shift 2
envs=()
while [ "$1" != "--" ]; do envs+=("$1"); shift; done
shift
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
mkdir -p "$root$checkout" "$root/root/.cache/uv" /root/.cache/uv
mount --bind "$checkout" "$root$checkout"
# uv's download cache is shared with the host's (copied, not linked, across mounts).
mount --bind /root/.cache/uv "$root/root/.cache/uv"
# shellcheck disable=SC2016
exec chroot "$root" /usr/bin/env -i "${envs[@]}" UV_LINK_MODE=copy \
  /bin/bash -c 'cd "$0" && exec "$@"' "$checkout" "$@"

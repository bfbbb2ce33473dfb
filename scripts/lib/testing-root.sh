# shellcheck shell=bash
# The current-release leg's Debian testing root file system (see docs/testing.md):
# built once into a cache folder outside the checkout, entered with chroot in a
# private mount namespace, so mounts vanish with the command and several
# checkouts can use one root at the same time.

TESTING_ROOT="${MAIL_RELAY_TESTING_ROOT:-/var/cache/mail-relay/debian-testing}"
# What the root holds: Python 3.14 for the venv, Dovecot 2.4 for the tests,
# Chromium for the browser test. Changing this list rebuilds the root.
TESTING_ROOT_PACKAGES="python3.14-venv,python3.14-dev,build-essential,ca-certificates,git,openssl,dovecot-imapd,dovecot-pop3d,dovecot-lmtpd,chromium,fonts-dejavu-core"
TESTING_ROOT_STAMP="$TESTING_ROOT/.mail-relay-root"

_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The Debian mirror the host uses (deb822 or one-line sources).
_debian_mirror() {
  local uri
  uri=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null \
          | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Build the root when it is missing, broken or made from another package list.
ensure_testing_root() {
  if [ -f "$TESTING_ROOT_STAMP" ] && [ "$(cat "$TESTING_ROOT_STAMP")" = "$TESTING_ROOT_PACKAGES" ] \
     && [ -x "$TESTING_ROOT/usr/bin/python3.14" ] && [ -x "$TESTING_ROOT/usr/sbin/dovecot" ]; then
    return 0
  fi
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "==> Installing mmdebstrap"
    _as_root apt-get update -qq
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap
  fi
  echo "==> Building the Debian testing root in $TESTING_ROOT (about a minute)"
  _as_root rm -rf "$TESTING_ROOT.new"
  _as_root mkdir -p "$(dirname "$TESTING_ROOT")"
  # The mirror's snapshot may be past its Release file's "valid until" date.
  # mmdebstrap keeps daemons from starting while it installs packages.
  _as_root mmdebstrap --quiet --variant=apt \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$TESTING_ROOT_PACKAGES" \
    testing "$TESTING_ROOT.new" "$(_debian_mirror)"
  # Packages installed later inside must not start daemons either.
  printf '#!/bin/sh\nexit 101\n' | _as_root tee "$TESTING_ROOT.new/usr/sbin/policy-rc.d" >/dev/null
  _as_root chmod 755 "$TESTING_ROOT.new/usr/sbin/policy-rc.d"
  _as_root ln -sf python3.14 "$TESTING_ROOT.new/usr/bin/python3"
  _as_root rm -rf "$TESTING_ROOT"
  _as_root mv "$TESTING_ROOT.new" "$TESTING_ROOT"
  printf '%s' "$TESTING_ROOT_PACKAGES" | _as_root tee "$TESTING_ROOT_STAMP" >/dev/null
}

# Run a command inside the root, in this checkout (mounted at the same path),
# with the host's CA bundle and package-index settings.
in_testing_root() {
  local checkout="$PWD"
  local f
  for f in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
    if [ -f "$f" ]; then
      _as_root mkdir -p "$TESTING_ROOT$(dirname "$f")"
      _as_root cp -f "$f" "$TESTING_ROOT$f"
    fi
  done
  local envs=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
              "PATH=$checkout/.venv-current/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin")
  local name
  for name in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
              PIP_DEFAULT_TIMEOUT UV_INDEX_URL UV_EXTRA_INDEX_URL CI \
              E2E_ARTIFACTS BENCH_RESULTS; do
    if [ -n "${!name:-}" ]; then envs+=("$name=${!name}"); fi
  done
  _as_root unshare --mount --propagation private -- \
    /bin/bash "$(dirname "${BASH_SOURCE[0]}")/enter-testing-root.sh" \
    "$TESTING_ROOT" "$checkout" "${envs[@]}" -- "$@"
}

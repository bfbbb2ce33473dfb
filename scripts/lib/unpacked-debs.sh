# shellcheck shell=bash
# Debian packages unpacked into a folder, never installed: Cyrus IMAP and Postfix
# for the cross-server tests (tests/mailserver/cyrus.py, postfix.py). Installing
# them would start system daemons and conflict with Dovecot's packages; unpacked
# with `dpkg -x`, the tests run them from generated configurations instead.
#
# unpack_debs DEST PACKAGE...   download PACKAGE... and the libraries they need
#                               that this system lacks into DEST, unpack them
#                               into DEST/root; a stamp skips the work next time.
# Run inside the testing root for the current leg: the package lists, the
# downloads and the check "does this system have the library" are then that
# system's. apt's lists and cache live in DEST too, so the system's own apt
# state is never touched.

# What the cross-server tests run, unpacked (tests/mailserver/unpacked.py).
UNPACKED_PACKAGES=(cyrus-common cyrus-imapd cyrus-pop3d sasl2-bin postfix)

# The folder for this system's release: the host and the testing root differ.
unpacked_dir() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-$ID}")
  echo "${MAIL_RELAY_PKGS:-/var/cache/mail-relay/pkgs-$codename}"
}

# The cross-server packages for this system (tests skip a family that is missing).
ensure_unpacked() {
  unpack_debs "$(unpacked_dir)" "${UNPACKED_PACKAGES[@]}"
}

unpack_debs() {
  local dest=$1
  shift
  local stamp="$dest/.mail-relay-packages"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ] && [ -d "$dest/root" ]; then
    return 0
  fi
  mkdir -p "$dest/lists/partial" "$dest/cache/archives/partial"
  local apt_opts=(
    -o "Dir::State::Lists=$dest/lists"
    -o "Dir::Cache=$dest/cache"
    -o "Acquire::Check-Valid-Until=false"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
  )
  echo "==> Fetching ${*} (unpacked into $dest, not installed)"
  apt-get "${apt_opts[@]}" update -qq
  local wanted=("$@") pkg
  # Libraries of the closure this system lacks; the named packages themselves.
  while read -r pkg; do
    case "$pkg" in lib*) ;; *) continue ;; esac
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      continue
    fi
    wanted+=("$pkg")
  done < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
             --no-conflicts --no-breaks --no-replaces --no-enhances "$@" \
           | grep -E '^[a-z0-9]' | sort -u)
  rm -rf "$dest/debs" "$dest/root.new"
  mkdir -p "$dest/debs" "$dest/root.new"
  (cd "$dest/debs" && apt-get "${apt_opts[@]}" download -qq "${wanted[@]}")
  local deb
  for deb in "$dest"/debs/*.deb; do
    dpkg -x "$deb" "$dest/root.new"
  done
  rm -rf "$dest/root"
  mv "$dest/root.new" "$dest/root"
  printf '%s' "$*" > "$stamp"
}

#!/usr/bin/env bash
# Installs what Stint's tests and demo need on Debian/Ubuntu, when missing. Idempotent: a second run only checks.
# Other systems: install PostgreSQL 15+, MariaDB 10.4+ (server and client), OpenSSH server, Chromium, gnome-keyring
# + libsecret (dev headers), dbus, xvfb and libfaketime (the chaos run moves agents' clocks with it) with your
# package manager, create users named stintbastion and stinttarget with no password, and set STINT_PG_BIN to
# PostgreSQL's bin directory.
set -euo pipefail

packages=(postgresql openssh-server openssh-client curl chromium xvfb gnome-keyring libsecret-1-dev libsecret-tools dbus dbus-x11 ca-certificates mariadb-server mariadb-client iproute2 faketime)
need_cmds=(/usr/lib/postgresql/15/bin/initdb /usr/bin/curl /usr/sbin/sshd /usr/bin/chromium /usr/bin/xvfb-run /usr/bin/gnome-keyring-daemon /usr/bin/secret-tool /usr/bin/dbus-daemon /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/mariadb /usr/bin/ss /usr/bin/faketime)

missing=()
for path in "${need_cmds[@]}"; do [ -x "$path" ] || missing+=("$path"); done
[ -e /usr/include/libsecret-1/libsecret/secret.h ] || missing+=(libsecret-1-dev)

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "prereqs: not root and no sudo; install as root: apt-get install -y ${packages[*]}" >&2; exit 1
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "prereqs: missing ${missing[*]} and this is not a Debian-like system." >&2
    echo "prereqs: install PostgreSQL 15, MariaDB, OpenSSH server, Chromium, gnome-keyring, libsecret (dev), dbus and xvfb, then re-run." >&2
    exit 1
  fi
  echo "prereqs: installing ${packages[*]} (missing: ${missing[*]})"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The distro's own sshd, postgres and mariadb services are not used (tests and the demo start their own); stop them if the
# package install started them, so they hold no ports.
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  "${sudo_cmd[@]}" systemctl disable --now ssh postgresql mariadb >/dev/null 2>&1 || true
fi

# The bastion's login user, and the login on the demo's SSH target host (a second sshd, issue #23): no password
# (locked for passwords, usable with keys).
for login in stintbastion stinttarget; do
  if ! id -u "$login" >/dev/null 2>&1; then
    "${sudo_cmd[@]}" useradd -m -s /bin/bash "$login"
  fi
  "${sudo_cmd[@]}" usermod -p '*' "$login"
done
"${sudo_cmd[@]}" mkdir -p /run/sshd /usr/local/libexec

echo "prereqs: ok"

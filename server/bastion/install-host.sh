#!/bin/sh
# Makes an OpenSSH host a Stint SSH target (issue #23; docs/admin.md "SSH hosts"): the key program the bastion uses
# as this host's AuthorizedKeysCommand, its config with this host's token, and the kill companion as a service.
# Run as root on the host, from the Stint release unpacked in /opt/stint, with the host's token on stdin (so it is
# in neither argv nor the shell history):
#
#     sudo sh /opt/stint/server/bastion/install-host.sh https://stint.example.com < host-token
#
# Idempotent. Keys in users' own authorized_keys keep working (the drop-in adds the command, it does not replace
# the files), so administrators are not locked out. Undo: remove /etc/ssh/sshd_config.d/stint.conf, reload sshd,
# `systemctl disable --now stint-host-companion`.
set -eu
umask 022

server_url=${1:?usage: install-host.sh <server url> < token-file}
stint=${STINT_HOME:-/opt/stint}
env_file=/etc/stint/host.env

[ "$(id -u)" = 0 ] || { echo "install-host: run as root" >&2; exit 1; }
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || { echo "install-host: OpenSSH server is not installed" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || { echo "install-host: curl is needed by the key program" >&2; exit 1; }
[ -f "$stint/server/bastion/authorized-keys.sh" ] || { echo "install-host: no Stint release in $stint (set STINT_HOME)" >&2; exit 1; }
case $server_url in http://* | https://*) ;; *) echo "install-host: the server URL must start with https:// (or http://)" >&2; exit 1 ;; esac
IFS= read -r token || [ -n "$token" ] || { echo "install-host: give the host's token on stdin" >&2; exit 1; }
case $token in '' | *[!A-Za-z0-9._~+/=-]*) echo "install-host: the token has characters a token does not have" >&2; exit 1 ;; esac

# The key program runs as its own unprivileged user, and only it (and root) may read the token.
id -u stint-keys >/dev/null 2>&1 || useradd -r -s /usr/sbin/nologin -U stint-keys
install -d -o root -g root -m 0755 /usr/local/libexec/stint /etc/stint
install -o root -g root -m 0755 "$stint/server/bastion/authorized-keys.sh" /usr/local/libexec/stint/authorized-keys
printf 'STINT_SERVER_URL=%s\nSTINT_BASTION_TOKEN=%s\n' "$server_url" "$token" > "$env_file.new"
chown root:stint-keys "$env_file.new" && chmod 0640 "$env_file.new" && mv "$env_file.new" "$env_file"

# sshd asks the key program for every key it is offered; the line it gets back carries the grant's limits.
install -d -m 0755 /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/stint.conf <<CONF
# Stint: keys of active grants on this host, from the grant server (install-host.sh).
AuthorizedKeysCommand /usr/local/libexec/stint/authorized-keys -f $env_file %u %t %k
AuthorizedKeysCommandUser stint-keys
PubkeyAuthentication yes
LogLevel VERBOSE
LoginGraceTime 20
CONF

cat > /etc/systemd/system/stint-host-companion.service <<UNIT
[Unit]
Description=Stint companion (ends SSH sessions of ended grants on this host)
After=network-online.target ssh.service

[Service]
ExecStart=/usr/bin/env npx tsx $stint/server/bastion/companion.ts -f $env_file
Restart=always
RestartSec=2
User=root

[Install]
WantedBy=multi-user.target
UNIT

sshd -t
systemctl daemon-reload
systemctl reload ssh 2>/dev/null || systemctl reload sshd
systemctl enable --now stint-host-companion
echo "install-host: done; check: sudo -u stint-keys /usr/local/libexec/stint/authorized-keys -f $env_file nobody ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDGmt0lbF7nN0Rw5X9DQbyV0m9ozJXx1VHBc3C4ztV4W (prints nothing)"

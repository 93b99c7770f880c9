#!/bin/sh
# Stint's AuthorizedKeysCommand for a stock OpenSSH bastion. sshd runs it (without a shell, with a clean
# environment, as AuthorizedKeysCommandUser) twice per login:
#     AuthorizedKeysCommand /usr/local/libexec/stint/authorized-keys %u %t %k
# or, with a config file elsewhere:
#     AuthorizedKeysCommand /usr/local/libexec/stint/authorized-keys -f /etc/stint/bastion.env %u %t %k
# It asks the grant server which active grant owns the offered key and prints that one key line. It fails closed:
# on any error, a bad answer or a slow server (hard curl timeout, because sshd would wait up to LoginGraceTime and
# each hung login holds a MaxStartups slot) it prints nothing and sshd refuses the key.
# It reports its parent pid, the sshd process serving this connection, so the companion can end the connection
# when the grant ends. sh + curl keeps it at ~10 ms (a Node script costs ~95 ms per run).
#
# Config (KEY=value lines; readable by root and the AuthorizedKeysCommandUser's group only — it holds the token):
#   STINT_SERVER_URL=https://stint.example.com      (required; the /v1/bastion routes live under it)
#   STINT_BASTION_TOKEN=…                            (required; this bastion's credential)
#   STINT_CA_FILE=/etc/stint/ca.pem                  (optional; CA bundle for the server's TLS certificate)
#   STINT_TIMEOUT=2                                  (optional; seconds for the whole request, default 2)
PATH=/usr/local/bin:/usr/bin:/bin
export PATH
umask 077

config=/etc/stint/bastion.env
if [ "${1-}" = "-f" ]; then
  [ $# -ge 2 ] || exit 0
  config=$2
  shift 2
fi
[ $# -eq 3 ] || exit 0
user=$1
type=$2
key=$3

# Only ed25519 keys are issued per grant; anything else is not ours to look up.
[ "$type" = "ssh-ed25519" ] || exit 0
case $key in '' | *[!A-Za-z0-9+/=]*) exit 0 ;; esac

url= token= cafile= timeout=2
[ -r "$config" ] || exit 0
while IFS='=' read -r name value || [ -n "$name" ]; do
  case $name in
    STINT_SERVER_URL) url=$value ;;
    STINT_BASTION_TOKEN) token=$value ;;
    STINT_CA_FILE) cafile=$value ;;
    STINT_TIMEOUT) timeout=$value ;;
  esac
done < "$config"

# Values go into curl's config syntax inside double quotes: refuse anything that could break out of them.
case $url in '' | *[!]A-Za-z0-9:/._~%@[-]*) exit 0 ;; esac
case $token in '' | *[!A-Za-z0-9._~+/=-]*) exit 0 ;; esac
case $cafile in *[!A-Za-z0-9/._-]*) exit 0 ;; esac
case $timeout in '' | *[!0-9.]*) timeout=2 ;; esac
case $user in *[!A-Za-z0-9._-]*) exit 0 ;; esac

# The token travels in curl's config on stdin (printf is a shell builtin), never in argv where `ps` shows it.
answer=$(
  {
    printf 'url = "%s/v1/bastion/authorized-keys"\n' "${url%/}"
    printf 'header = "Authorization: Bearer %s"\n' "$token"
    [ -n "$cafile" ] && printf 'cacert = "%s"\n' "$cafile"
  } | curl --config - --silent --fail --get --proto '=http,https' --max-time "$timeout" --connect-timeout 1 \
      --max-filesize 8192 \
      --data-urlencode "user=$user" --data-urlencode "type=$type" --data-urlencode "key=$key" \
      --data-urlencode "pid=$PPID" 2>/dev/null
) || exit 0

# Exactly one line, for exactly the offered key, starting with our restrictions; otherwise nothing.
nl='
'
case $answer in *"$nl"*) exit 0 ;; esac
case $answer in "restrict,"*" ssh-ed25519 $key grant:"*) printf '%s\n' "$answer" ;; esac
exit 0

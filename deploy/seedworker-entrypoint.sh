#!/bin/sh
# The image's `seedworker` (first on PATH, so ENTRYPOINT, health checks and `docker compose exec`
# all come through here).  Started as root, it gives the seedworker user the ids in
# USERMAP_UID / USERMAP_GID (as paperless-ngx does; default 10001), hands it the data directory
# and the inbox folder, and runs the real seedworker as that user with no privileges left
# (setpriv, from util-linux).  Started as any other user (docker run --user, Kubernetes
# runAsUser), it changes nothing and runs seedworker as that user.
set -eu

REAL=/opt/seedworker/bin/seedworker
USER_NAME=seedworker

if [ "$(id -u)" != 0 ]; then
    exec "$REAL" "$@"
fi

uid="${USERMAP_UID:-$(id -u "$USER_NAME")}"
gid="${USERMAP_GID:-$(id -g "$USER_NAME")}"
for pair in "USERMAP_UID=$uid" "USERMAP_GID=$gid"; do
    case "${pair#*=}" in
        '' | *[!0-9]*) echo "seedworker: $pair is not a number" >&2; exit 2 ;;
    esac
done
if [ "$uid" = 0 ] || [ "$gid" = 0 ]; then
    echo "seedworker: USERMAP_UID/USERMAP_GID 0 would run seedworker as root; use your own ids (id -u, id -g)" >&2
    exit 2
fi

# One mapping at a time (a health check may start while the main process maps).
exec 9<"$0"
flock 9
if [ "$(id -g "$USER_NAME")" != "$gid" ]; then
    groupmod -o -g "$gid" "$USER_NAME"
    echo "seedworker: group $USER_NAME mapped to gid $gid" >&2
fi
if [ "$(id -u "$USER_NAME")" != "$uid" ]; then
    usermod -o -u "$uid" -g "$gid" "$USER_NAME"
    echo "seedworker: user $USER_NAME mapped to uid $uid" >&2
fi
# The data directory is ours: everything in it changes hands when the ids change.  Of the inbox
# only the folder itself (claiming a file is a rename, which needs the folder, not the file).
data="${SEEDWORKER_DATA_DIR:-/data}"
inbox="${SEEDWORKER_INBOX:-/inbox}"
if [ -d "$data" ] && [ "$(stat -c %u:%g "$data")" != "$uid:$gid" ]; then
    chown -R "$uid:$gid" "$data"
fi
for dir in "$inbox" "$inbox/.seedworker-processing"; do
    if [ -d "$dir" ] && [ "$(stat -c %u:%g "$dir")" != "$uid:$gid" ]; then
        chown "$uid:$gid" "$dir"
    fi
done
exec 9<&-

case "${HOME:-/}" in / | /root) HOME="$data" ;; esac
export HOME USER="$USER_NAME" LOGNAME="$USER_NAME"
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --bounding-set=-all -- "$REAL" "$@"

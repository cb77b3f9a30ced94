#!/usr/bin/env bash
# Installs the Debian packages the interop tests drive (real clients and daemons), when missing.
# Runs apt-get only as root; otherwise it lists what is missing and leaves it to the user.
set -euo pipefail

# command -> Debian package
declare -A NEEDED=(
  [skopeo]=skopeo
  [podman]=podman
  [buildah]=buildah
  [dockerd]=docker.io
  [runc]=runc
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [newuidmap]=uidmap
  [chromium]=chromium
  [nginx]=nginx
)
missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -q '^sh$' && file -L /bin/busybox 2>/dev/null | grep -q static || missing+=(busybox-static)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)  # Debian keeps initdb and pg_ctl off PATH
if [ ${#missing[@]} -eq 0 ]; then
  echo "system tools: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${missing[@]}" file

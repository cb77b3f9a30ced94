#!/usr/bin/env bash
# Installs dockyard without Docker: a venv under PREFIX, a system user, /etc/dockyard/config.yml,
# the data directory and the systemd units. Idempotent: running it again upgrades the code and keeps
# the config, the data and the signing key. `--uninstall` removes the code, the units and the user
# (the data and the config stay unless --purge is given).
#
#   sudo ./install.sh                       # from this source tree
#   sudo ./install.sh --wheel dockyard-0.1.0-py3-none-any.whl
#   sudo ./install.sh --uninstall [--purge]
#
# Paths and names can be changed (the tests install into a temporary root this way):
#   --prefix /opt/dockyard  --config-dir /etc/dockyard  --data-dir /var/lib/dockyard
#   --unit-dir /etc/systemd/system  --user dockyard  --no-systemd (install the units, don't enable them)
set -euo pipefail
umask 022  # the code must be readable by the service user; config and data set their own modes

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(dirname "$HERE")"
PREFIX=/opt/dockyard
CONFIG_DIR=/etc/dockyard
DATA_DIR=/var/lib/dockyard
UNIT_DIR=/etc/systemd/system
SERVICE_USER=dockyard
WHEEL=""
ACTION=install
PURGE=0
SYSTEMD=1
# The system's interpreter (the service user must be able to run it: a pyenv under /root would not do).
PYTHON="${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || true)}"

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --config-dir) CONFIG_DIR="$2"; shift 2 ;;
    --data-dir) DATA_DIR="$2"; shift 2 ;;
    --unit-dir) UNIT_DIR="$2"; shift 2 ;;
    --user) SERVICE_USER="$2"; shift 2 ;;
    --wheel) WHEEL="$2"; shift 2 ;;
    --source) SOURCE="$2"; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (it creates a system user and writes $PREFIX, $CONFIG_DIR, $DATA_DIR)"
case "$SERVICE_USER" in ''|*[!a-z0-9_-]*) die "--user must be a plain user name, got '$SERVICE_USER'" ;; esac
for dir in "$PREFIX" "$CONFIG_DIR" "$DATA_DIR" "$UNIT_DIR"; do
  case "$dir" in /*) ;; *) die "paths must be absolute, got '$dir'" ;; esac
done

have_systemd() { [ "$SYSTEMD" -eq 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

# The units name the default paths; rewrite them for the chosen ones.
render_unit() {
  sed -e "s#/opt/dockyard#$PREFIX#g" -e "s#/etc/dockyard#$CONFIG_DIR#g" -e "s#/var/lib/dockyard#$DATA_DIR#g" \
      -e "s#^User=dockyard#User=$SERVICE_USER#" -e "s#^Group=dockyard#Group=$SERVICE_USER#" "$1"
}

check_python() {
  [ -n "$PYTHON" ] || die "no python3 found (Debian: apt install python3 python3-venv)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is older than Python 3.11"
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "$PYTHON cannot make venvs (Debian: apt install python3-venv)"
  runuser -u "$SERVICE_USER" -- "$PYTHON" -c pass 2>/dev/null \
    || die "user $SERVICE_USER cannot run $PYTHON (choose another interpreter with PYTHON=/usr/bin/python3)"
}

install_source() {
  # setuptools builds inside the tree it is given (build/, *.egg-info): built from a private copy, a stale build in
  # the source tree cannot leak old files into the install, nor a build running there at the same time collide
  local copy
  copy="$(mktemp -d)"
  tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='./*.egg-info' \
    --exclude=./.mypy_cache --exclude=./.pytest_cache --exclude=./.ruff_cache --exclude=./.hypothesis \
    --exclude=./bench/out -cf - . | tar -C "$copy" -xf -
  "$PREFIX/venv/bin/pip" install -q --upgrade "$copy" || { rm -rf "$copy"; return 1; }
  rm -rf "$copy"
}

install_code() {
  check_python
  "$PYTHON" -m venv "$PREFIX/venv"
  "$PREFIX/venv/bin/pip" install -q --upgrade pip
  if [ -n "$WHEEL" ]; then
    [ -f "$WHEEL" ] || die "no such wheel: $WHEEL"
    "$PREFIX/venv/bin/pip" install -q --upgrade "$WHEEL"
  else
    [ -f "$SOURCE/pyproject.toml" ] || die "no dockyard source tree at $SOURCE (give --source DIR or --wheel FILE)"
    install_source
  fi
  mkdir -p "$PREFIX/share"
  rm -rf "$PREFIX/share/Dockerfile-free-deploy"
  cp -r "$HERE" "$PREFIX/share/Dockerfile-free-deploy"
}

create_user() {
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
}

write_config() {
  install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
  if [ ! -f "$CONFIG_DIR/config.yml" ]; then
    sed -e "s#/var/lib/dockyard#$DATA_DIR#g" "$HERE/config/single-host.yml" > "$CONFIG_DIR/config.yml"
    chown root:"$SERVICE_USER" "$CONFIG_DIR/config.yml"
    chmod 0640 "$CONFIG_DIR/config.yml"
  fi
  install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
}

install_units() {
  install -d "$UNIT_DIR"
  for unit in dockyard.service dockyard-gc.service dockyard-gc.timer; do
    render_unit "$HERE/systemd/$unit" > "$UNIT_DIR/$unit"
    chmod 0644 "$UNIT_DIR/$unit"
  done
  if have_systemd; then
    systemctl daemon-reload
    systemctl enable --now dockyard.service
  fi
}

uninstall() {
  if have_systemd; then
    systemctl disable --now dockyard-gc.timer dockyard.service 2>/dev/null || true
  fi
  rm -f "$UNIT_DIR/dockyard.service" "$UNIT_DIR/dockyard-gc.service" "$UNIT_DIR/dockyard-gc.timer"
  have_systemd && systemctl daemon-reload
  rm -rf "$PREFIX"
  if [ "$PURGE" -eq 1 ]; then
    rm -rf "$CONFIG_DIR" "$DATA_DIR"
  fi
  if getent passwd "$SERVICE_USER" >/dev/null; then
    userdel "$SERVICE_USER" 2>/dev/null || true
  fi
  getent group "$SERVICE_USER" >/dev/null && groupdel "$SERVICE_USER" 2>/dev/null || true
  echo "dockyard removed$([ "$PURGE" -eq 1 ] && echo ', with its config and data' || echo "; config $CONFIG_DIR and data $DATA_DIR kept")"
}

if [ "$ACTION" = uninstall ]; then
  uninstall
  exit 0
fi
create_user
install_code
write_config
install_units
echo "dockyard installed in $PREFIX (config $CONFIG_DIR/config.yml, data $DATA_DIR)"
have_systemd && echo "running: systemctl status dockyard" || echo "start it with: $PREFIX/venv/bin/dockyard serve --config $CONFIG_DIR/config.yml"

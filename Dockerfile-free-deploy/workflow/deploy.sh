#!/bin/sh
# Host B: run (or replace) the application from the registry, with its data on a named volume.
# The old container is stopped and removed; the volume, and everything the app wrote there, stays.
#
#   REGISTRY=registry.example.com VERSION=v2 ./deploy.sh
# Optional: DOCKYARD, DOCKYARD_FLAGS (as in build-and-push.sh), PORT (host port, default 8080).
set -eu
: "${REGISTRY:?set REGISTRY}" "${VERSION:?set VERSION}"
DOCKYARD="${DOCKYARD:-dockyard}"
FLAGS="${DOCKYARD_FLAGS:-}"
PORT="${PORT:-8080}"
IMAGE="$REGISTRY/demo/hello-app:$VERSION"

$DOCKYARD pull $FLAGS "$IMAGE"
$DOCKYARD volume inspect hello-data >/dev/null 2>&1 || $DOCKYARD volume create hello-data
$DOCKYARD stop hello-app >/dev/null 2>&1 || true
$DOCKYARD rm hello-app >/dev/null 2>&1 || true
$DOCKYARD run -d --name hello-app -v hello-data:/data -p "$PORT:8080" "$IMAGE"
echo "hello-app $VERSION runs on port $PORT"

#!/bin/sh
# Host A: build the application image WITHOUT a Dockerfile and push it.
#   1. run a container of the base image, with the application's files mounted read-only, and copy them in;
#   2. commit the container's filesystem changes as a new layer, with the command that starts the app;
#   3. push the new image (only the new layer travels: the registry already has the base layers).
#
#   REGISTRY=registry.example.com VERSION=v1 BASE=registry.example.com/library/busybox:latest ./build-and-push.sh
# Optional: DOCKYARD (the dockyard command, default "dockyard"), DOCKYARD_FLAGS (e.g. "--insecure-registry HOST"
# for a plain-HTTP registry outside 127.0.0.0/8), APP (the folder to ship, default ./app).
set -eu
: "${REGISTRY:?set REGISTRY}" "${VERSION:?set VERSION}" "${BASE:?set BASE}"
DOCKYARD="${DOCKYARD:-dockyard}"
FLAGS="${DOCKYARD_FLAGS:-}"
HERE=$(cd "$(dirname "$0")" && pwd)
APP="${APP:-$HERE/app}"
IMAGE="$REGISTRY/demo/hello-app:$VERSION"
BUILDER="hello-app-build-$VERSION"

$DOCKYARD pull $FLAGS "$BASE"
$DOCKYARD rm -f "$BUILDER" >/dev/null 2>&1 || true
$DOCKYARD run --name "$BUILDER" --network none -v "$APP:/src:ro" "$BASE" \
  sh -c "mkdir -p /app && cp /src/* /app/ && chmod 0755 /app/start.sh && echo $VERSION > /app/VERSION"
$DOCKYARD commit -m "hello-app $VERSION" -c 'CMD ["/app/start.sh"]' -c 'EXPOSE 8080' -c 'VOLUME /data' \
  "$BUILDER" "$IMAGE"
$DOCKYARD rm "$BUILDER"
$DOCKYARD push $FLAGS "$IMAGE"
echo "pushed $IMAGE"

#!/bin/sh
# The demo application: serves /data/www over HTTP on port 8080. Each start is recorded in /data, a volume,
# so the record outlives every container and every version of the image.
set -eu
mkdir -p /data/www
version=$(cat /app/VERSION)
echo "$version started" >> /data/www/history.txt
echo "$version" > /data/www/version.txt
cp /app/index.html /data/www/index.html
exec busybox httpd -f -p 8080 -h /data/www

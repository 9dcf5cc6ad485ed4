#!/usr/bin/env bash
# Sets up a Docker-compatible engine (podman) and the images the containerized tests
# use (the connector, PostgreSQL, an Apache Kafka node), on a machine with no Docker
# engine and no registry (the recipe of the project's
# CONTAINERS.md: runc + cgroupfs, a debootstrap base image, host networking).
# Idempotent. Prints the environment the tests need; `source` its last line or use
# `eval "$(bash docker/podman-setup.sh | tail -1)"`.
set -euo pipefail
cd "$(dirname "$0")/.."
SOCK=/tmp/podman.sock
BASE=localhost/debian-base:bookworm

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
mkdir -p /etc/containers
if [ ! -f /etc/containers/containers.conf ] || ! grep -q cgroupfs /etc/containers/containers.conf; then
    cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi
if ! curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
    # From /: the service outlives this script, and its containers' monitors inherit its
    # working directory, which must not be a checkout that may be deleted meanwhile.
    (cd / && exec nohup podman system service --time=0 "unix://$SOCK" >/tmp/podman-service.log 2>&1) &
    for _ in $(seq 50); do curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
if ! podman image exists "$BASE"; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    rootfs=$(mktemp -d /tmp/rootfs.XXXX)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    # Trust what the host trusts (its network may use its own certificate authorities),
    # under a path Debian's ca-certificates package does not regenerate.
    mkdir -p "$rootfs/etc/ssl"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/host-ca-bundle.crt"
    tar -C "$rootfs" -c . | podman import \
        --change "ENV PIP_CERT=/etc/ssl/host-ca-bundle.crt" \
        --change "ENV SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt" \
        --change "ENV REQUESTS_CA_BUNDLE=/etc/ssl/host-ca-bundle.crt" - "$BASE" >/dev/null
    rm -rf "$rootfs"
fi
# The connector image, PostgreSQL, and an Apache Kafka KRaft node: Debian's JRE and the
# jars docker/kafka/pom.xml resolves from Maven Central (cached outside the work tree).
podman build -q --format docker --network host --build-arg BASE_IMAGE="$BASE" -f docker/Dockerfile -t localhost/eos-connector:test . >/dev/null
podman build -q --format docker --network host --build-arg BASE_IMAGE="$BASE" -f docker/postgres.Dockerfile -t localhost/eos-postgres:test docker >/dev/null
libs=$(python3 -m connector.embedded.apache)
context=$(mktemp -d /tmp/kafka-image.XXXX)
cp -r "$libs" "$context/libs"
cp "$(dirname "$libs")/log4j2.yaml" docker/kafka/start-node.sh "$context/"
podman build -q --format docker --network host --build-arg BASE_IMAGE="$BASE" -f docker/kafka/Dockerfile -t localhost/eos-kafka:test "$context" >/dev/null
rm -rf "$context"
echo "export DOCKER_HOST=unix://$SOCK TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_CONNECTION_MODE=docker_host TC_HOST=127.0.0.1 EOS_TEST_BACKEND=containers"

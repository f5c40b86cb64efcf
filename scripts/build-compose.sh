#!/usr/bin/env bash
# Build Docker Compose (the `docker compose` CLI plugin) from its Go module and
# print the binary's path; tests/integration/test_compose.py validates docker-compose.yml
# with its `config` command, which needs no Docker engine.
#
# Usage: scripts/build-compose.sh
#
# Use this only where `docker compose version` does not already work. The
# binary runs standalone (`docker-compose config`); to use it as a plugin,
# copy it to ~/.docker/cli-plugins/docker-compose.
#
# The module github.com/docker/compose/v5 has replace and exclude directives,
# which `go install module@version` refuses; so its source is fetched with
# `go mod download` and built as the main module, as its own Makefile does.
# v5.6.0 is the newest release that builds with Go 1.26.8 (v5.7 needs 1.26.10).
#
# Cached in ${OTEL_JOBTAGS_CACHE:-$HOME/.cache/otel-jobtags}/docker-compose-<version>/.
#
# Environment:
#   OTEL_JOBTAGS_CACHE  cache root (default: $HOME/.cache/otel-jobtags)
#   GO                  go command to use (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

script_name=build-compose
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$repo_root/scripts/lib/common.sh"

module=github.com/docker/compose/v5
version=v5.6.0

find_go
cache_root=${OTEL_JOBTAGS_CACHE:-$HOME/.cache/otel-jobtags}
dest_dir="$cache_root/docker-compose-$version"
binary="$dest_dir/docker-compose"

use_cached_or_lock "$binary" "$cache_root/.build-compose.lock" "$version" version

log "fetching $module@$version"
module_json=$("$go_cmd" mod download -json "$module@$version") ||
	die "go mod download $module@$version failed"
module_dir=$(printf '%s\n' "$module_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[[ -n $module_dir && -d $module_dir ]] || die "go mod download gave no source directory for $module@$version"

work_dir=$(mktemp -d "$cache_root/.build-compose-$version.XXXXXX")
cleanup() { rm -rf "$work_dir"; }
trap cleanup EXIT
# The module cache is read-only; build in a writable copy.
cp -R "$module_dir" "$work_dir/src"
chmod -R u+w "$work_dir/src"

log "building docker compose $version with $("$go_cmd" version)"
start=$SECONDS
(cd "$work_dir/src" && "$go_cmd" build -trimpath \
	-ldflags "-s -w -X $module/internal.Version=$version" \
	-o "$work_dir/docker-compose" ./cmd) >&2 ||
	die "go build of docker compose $version failed"
reports "$work_dir/docker-compose" "$version" version || die "the built docker-compose does not run or report $version"
log "built in $((SECONDS - start)) s"

mkdir -p "$dest_dir"
mv "$work_dir/docker-compose" "$binary.tmp"
mv "$binary.tmp" "$binary"
printf '%s\n' "$binary"

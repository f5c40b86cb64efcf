#!/usr/bin/env bash
# Build Toxiproxy's server (github.com/Shopify/toxiproxy/v2, MIT) from the Go
# module proxy, and print the binary's path. The fault-injection tests put it
# between the application and the collector, and between the collector and
# its back end.
#
# Usage: scripts/build-toxiproxy.sh
#
# The binary is cached per release in
#   ${OTEL_JOBTAGS_CACHE:-$HOME/.cache/otel-jobtags}/toxiproxy-<release>/toxiproxy-server
# so a second run returns at once. The build goes to a scratch directory and
# is moved into place only once it runs and reports its release, so an
# interrupted build never leaves a half-made binary behind; a lock serialises
# concurrent runs.
#
# stdout carries one line, the binary's absolute path; everything else
# (progress, go's output, errors) goes to stderr.
#
# Environment:
#   OTEL_JOBTAGS_CACHE  cache root (default: $HOME/.cache/otel-jobtags)
#   GO                  go command to use (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

script_name=build-toxiproxy
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$repo_root/scripts/lib/common.sh"

# The release tests/support/toxiproxy.py expects (RELEASE there).
release=2.5.0
module=github.com/Shopify/toxiproxy/v2

find_go

cache_root=${OTEL_JOBTAGS_CACHE:-$HOME/.cache/otel-jobtags}
dest_dir="$cache_root/toxiproxy-$release"
binary="$dest_dir/toxiproxy-server"

# A cached binary counts only if it runs and reports the release ("-version"
# prints "toxiproxy-server version <release>").
use_cached_or_lock "$binary" "$cache_root/.build-toxiproxy.lock" "version $release" -version

work_dir=$(mktemp -d "$cache_root/.build-toxiproxy-$release.XXXXXX")
cleanup() { rm -rf "$work_dir"; }
trap cleanup EXIT

log "building $module/cmd/server@v$release with $("$go_cmd" version)"
start=$SECONDS
# `go install` names the binary after the package directory: "server". The
# release is stamped the way Toxiproxy's own release builds do; a plain
# install reports "version git".
GOBIN="$work_dir" GOFLAGS="${GOFLAGS:-} -trimpath" "$go_cmd" install \
	-ldflags "-s -w -X $module.Version=$release" "$module/cmd/server@v$release" >&2 ||
	die "go install of $module/cmd/server@v$release failed"
built="$work_dir/server"
[[ -x $built ]] || die "go install reported success but $built does not exist"
reports "$built" "version $release" -version || die "$built does not run or does not report release $release"
log "built in $((SECONDS - start)) s"

mkdir -p "$dest_dir"
mv "$built" "$binary.tmp"
mv "$binary.tmp" "$binary"
printf '%s\n' "$binary"

#!/usr/bin/env bash
# Build the otel-jobtags OpenTelemetry Collector from collector/builder-config.yaml
# with the OpenTelemetry Collector Builder, and print the binary's path.
#
# Usage: scripts/build-collector.sh
#
# The binary is cached per release and manifest hash in
#   ${OTEL_JOBTAGS_CACHE:-$HOME/.cache/otel-jobtags}/otelcol-<release>-<hash>/otelcol-jobtags
# so a second run with the same manifest returns at once. Editing the manifest
# changes the hash and so builds anew. A build goes to a scratch directory and
# is moved into place only once it works, so an interrupted build never leaves
# a half-made binary behind; a lock serialises concurrent runs.
#
# stdout carries one line, the binary's absolute path; everything else
# (progress, the builder's and go's output, errors) goes to stderr.
#
# Environment:
#   OTEL_JOBTAGS_CACHE  cache root (default: $HOME/.cache/otel-jobtags)
#   GO                  go command to use (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

script_name=build-collector
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$repo_root/scripts/lib/common.sh"
manifest="$repo_root/collector/builder-config.yaml"
[[ -f $manifest ]] || die "builder manifest not found: $manifest"

# The release is the manifest's dist.version; the builder is taken at the same
# release so that its code generation matches the component modules.
release=$(sed -n 's/^  version: *"\{0,1\}\([0-9][0-9.]*\)"\{0,1\} *$/\1/p' "$manifest")
[[ $release =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
	die "could not read dist.version (x.y.z) from $manifest (got '${release}')"
binary_name=$(sed -n 's/^  name: *\([A-Za-z0-9_.-]*\) *$/\1/p' "$manifest" | head -n 1)
[[ -n $binary_name ]] || die "could not read dist.name from $manifest"
output_path=$(sed -n 's|^  output_path: *\./\([A-Za-z0-9_.-]*\) *$|\1|p' "$manifest")
[[ -n $output_path ]] ||
	die "dist.output_path in $manifest must be a plain relative directory like ./otelcol-jobtags"

# One release for every component: v<release> for the core and contrib
# modules, and one v1.x for the stable core modules published with it. The
# builder's strict versioning alone would let a component listed at an older
# release through, mixed with the newer core modules it resolves.
mapfile -t versions < <(sed -n 's/^ *- gomod: *[^ ]* \(v[0-9][^ ]*\) *$/\1/p' "$manifest" | sort -u)
(( ${#versions[@]} > 0 )) || die "no '- gomod: <module> <version>' entries in $manifest"
stable=()
for v in "${versions[@]}"; do
	[[ $v == "v$release" ]] && continue
	[[ $v == v1.* ]] || die "$manifest mixes releases: $v is neither v$release nor a stable v1.x module version"
	stable+=("$v")
done
(( ${#stable[@]} <= 1 )) || die "$manifest mixes releases of the stable modules: ${stable[*]}"

find_go

manifest_hash=$(sha256sum "$manifest" | cut -c1-12)
cache_root=${OTEL_JOBTAGS_CACHE:-$HOME/.cache/otel-jobtags}
dest_dir="$cache_root/otelcol-$release-$manifest_hash"
binary="$dest_dir/$binary_name"

# A cached binary counts only if it runs and reports the manifest's release.
use_cached_or_lock "$binary" "$cache_root/.build-collector.lock" "$release" --version

builder_bin_dir="$cache_root/tools/ocb-v$release"
builder="$builder_bin_dir/builder"
if [[ ! -x $builder ]]; then
	log "installing go.opentelemetry.io/collector/cmd/builder@v$release"
	GOBIN="$builder_bin_dir" "$go_cmd" install "go.opentelemetry.io/collector/cmd/builder@v$release" >&2 ||
		die "go install of the collector builder v$release failed"
fi

work_dir=$(mktemp -d "$cache_root/.build-$release-$manifest_hash.XXXXXX")
cleanup() { rm -rf "$work_dir"; }
trap cleanup EXIT

log "building $binary_name $release from $manifest (hash $manifest_hash) with $("$go_cmd" version)"
start=$SECONDS
# Strict versioning makes the builder fail when dependency resolution would move
# a component off the release the manifest names.
(cd "$work_dir" && "$builder" --config "$manifest" --skip-strict-versioning=false) >&2 ||
	die "the collector builder failed (manifest: $manifest)"
built="$work_dir/$output_path/$binary_name"
[[ -x $built ]] || die "the builder reported success but $built does not exist"
reports "$built" "$release" --version || die "$built does not run or does not report release $release"
log "built in $((SECONDS - start)) s"

rm -rf "$dest_dir"
mkdir -p "$dest_dir"
# Keep the generated sources (go.mod, main.go, components.go) beside the binary:
# they record exactly which module versions went into it.
cp "$work_dir/$output_path"/*.go "$work_dir/$output_path/go.mod" "$work_dir/$output_path/go.sum" "$dest_dir/"
cp "$manifest" "$dest_dir/builder-config.yaml"
mv "$built" "$binary.tmp"
mv "$binary.tmp" "$binary"
printf '%s\n' "$binary"

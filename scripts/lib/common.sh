# shellcheck shell=bash
# Helpers shared by the scripts/build-*.sh tools; source it, don't run it.
#
# Conventions of those tools: stdout carries only the built binary's path;
# progress and errors go to stderr; any failure exits non-zero with a message.

die() {
	printf '%s: error: %s\n' "${script_name:-${0##*/}}" "$*" >&2
	exit 1
}

log() {
	printf '%s: %s\n' "${script_name:-${0##*/}}" "$*" >&2
}

# find_go: sets go_cmd to the go command to use ($GO, else go on PATH, else
# /usr/local/go/bin/go) and puts its directory first on PATH, since tools
# such as the collector builder run "go" from PATH.
find_go() {
	go_cmd=${GO:-}
	if [[ -z $go_cmd ]]; then
		go_cmd=$(command -v go || true)
		[[ -n $go_cmd ]] || go_cmd=/usr/local/go/bin/go
	fi
	[[ -x $go_cmd ]] || go_cmd=$(command -v "$go_cmd" || true)
	[[ -n $go_cmd && -x $go_cmd ]] || die "no go toolchain found (set GO=/path/to/go)"
	PATH="$(dirname "$go_cmd"):$PATH"
	export PATH
}

# take_lock FILE: serialise concurrent builds sharing a cache (fd 9).
take_lock() {
	exec 9>"$1"
	if ! flock -n 9; then
		log "another build holds $1; waiting for it"
		flock 9
	fi
}

# reports BINARY VERSION ARG...: whether BINARY runs with ARG... and prints VERSION.
reports() {
	local binary=$1 want=$2 out
	shift 2
	[[ -x $binary ]] || return 1
	out=$("$binary" "$@" 2>&1) || return 1
	[[ $out == *"$want"* ]]
}

# use_cached_or_lock BINARY LOCKFILE VERSION ARG...: when a cached BINARY
# reports VERSION (see reports), print its path and exit; otherwise take the
# build lock and check once more, since another run may have built it while
# this one waited. Returns holding the lock, for the caller to build.
use_cached_or_lock() {
	local binary=$1 lock=$2
	shift 2
	if reports "$binary" "$@"; then
		printf '%s\n' "$binary"
		exit 0
	fi
	mkdir -p "$(dirname "$lock")"
	take_lock "$lock"
	if reports "$binary" "$@"; then
		printf '%s\n' "$binary"
		exit 0
	fi
}

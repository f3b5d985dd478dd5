# lib.sh - helpers of the `sop` command-line tests, sourced by
# tests/cli/test_*.sh after they set SOP (the binary) and NAME (a word for
# the temporary directory). Defines TMP (removed at exit), NL, TAB, and:
#   run ARGS...       runs sop; sets OUT (stdout, trailing newlines
#                     stripped), ERR and RC; death by a signal is a failure
#   check NAME RC [STDOUT]        exit status and (exactly) stdout
#   check_err NAME RC PATTERN     exit status and a stderr pattern (grep -E)
#   pass NAME / fail NAME [DETAIL...]
#   finish            prints the totals; returns 1 if a check failed
# pass() always succeeds, so `cond && pass || fail` is an if-then-else.
# shellcheck shell=bash disable=SC2015

if [ ! -x "$SOP" ]; then
    echo "FAIL: $SOP is not an executable"
    exit 1
fi
TMPBASE=${SOP_TEST_TMP:-${TMPDIR:-/tmp}}
mkdir -p "$TMPBASE" || exit 1
TMP=$(mktemp -d "$TMPBASE/sop-${NAME:-cli}-test.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
# shellcheck disable=SC2034
NL=$'\n'
# shellcheck disable=SC2034
TAB=$'\t'
passes=0
fails=0

pass() { echo "PASS: $1"; passes=$((passes + 1)); }
fail() {
    echo "FAIL: $1"
    shift
    for line in "$@"; do echo "      $line"; done
    fails=$((fails + 1))
}

run() {
    OUT=$("$SOP" "$@" 2>"$TMP/stderr")
    RC=$?
    ERR=$(cat "$TMP/stderr")
    if [ "$RC" -ge 128 ]; then
        fail "sop $* died with status $RC" "stderr: $ERR"
    fi
}

check() {
    local name=$1 want_rc=$2
    if [ "$RC" != "$want_rc" ]; then
        fail "$name" "exit status $RC, expected $want_rc" "stdout: $OUT" "stderr: $ERR"
        return
    fi
    if [ $# -ge 3 ] && [ "$OUT" != "$3" ]; then
        fail "$name" "stdout:   $(printf '%q' "$OUT")" "expected: $(printf '%q' "$3")" \
            "stderr: $ERR"
        return
    fi
    pass "$name"
}

check_err() {
    local name=$1 want_rc=$2 pat=$3
    if [ "$RC" != "$want_rc" ]; then
        fail "$name" "exit status $RC, expected $want_rc" "stdout: $OUT" "stderr: $ERR"
    elif ! grep -Eq -- "$pat" <<<"$ERR"; then
        fail "$name" "stderr does not match /$pat/: $ERR"
    else
        pass "$name"
    fi
}

finish() {
    echo "$passes passed, $fails failed"
    [ "$fails" = 0 ]
}

#!/usr/bin/env bash
# keel-log end to end: write/cat/--json/tail/-f/check/recover/stat/trim, usage
# errors, a damaged log, and writers killed with SIGKILL at random moments
# (after `keel-log recover`, `keel-log check` must find no damage, and each
# writer's numbered lines must be a gap-free run: a gap is a lost record).
# Usage: keel_log.sh PATH_TO_keel-log
set -euo pipefail
K=$1
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
log=$tmp/test.log
fails=0
pass=0
ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1: $2"; }
expect_eq() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected '$3', got '$2'"; fi; }

# write + cat: lines round-trip, empty lines included
printf 'alpha\nbeta\n\ngamma delta\n' | "$K" write "$log"
expect_eq "cat prints the lines" "$("$K" cat "$log")" $'alpha\nbeta\n\ngamma delta'

# --json is valid JSON, one object per line
n=$("$K" cat --json "$log" | python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if json.loads(l)["type"] == 1))')
expect_eq "cat --json parses" "$n" 4
printf 'quote " backslash \\ tab \t end\n' | "$K" write "$log"
txt=$("$K" cat --json "$log" | tail -n 1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["text"])')
expect_eq "json escapes" "$txt" $'quote " backslash \\ tab \t end'

# tail -n
expect_eq "tail -n 2" "$("$K" tail -n 2 "$log" | head -n 1)" "gamma delta"
expect_eq "tail default is 10" "$(seq 1 30 | "$K" write "$log"; "$K" tail "$log" | wc -l)" 10
expect_eq "tail -n 0" "$("$K" tail -n 0 "$log" | wc -l)" 0

# tail -f sees records appended later, then stops on SIGTERM
"$K" tail -n 0 -f "$log" > "$tmp/follow.out" &
follower=$!
sleep 0.3
seq 1 5 | sed 's/^/followed /' | "$K" write "$log"
for _ in $(seq 50); do [ "$(wc -l < "$tmp/follow.out")" -ge 5 ] && break; sleep 0.1; done
kill -TERM $follower
wait $follower && ok "tail -f exits 0 on SIGTERM" || bad "tail -f exit" "$?"
expect_eq "tail -f followed" "$(tail -n 1 "$tmp/follow.out")" "followed 5"

# check and stat on a clean log
"$K" check "$log" > "$tmp/check.out" && ok "check exits 0 when clean" || bad "check" "exit $?"
grep -q "the log is clean" "$tmp/check.out" && ok "check says clean" || bad "check text" "$(cat "$tmp/check.out")"
"$K" stat "$log" | grep -q "^state *ready" && ok "stat" || bad "stat" "no state line"

# trim: idempotent, and the log still works after it
"$K" trim "$log" > /dev/null && "$K" trim "$log" > /dev/null && ok "trim twice" || bad "trim" "$?"
size=$(stat -c %s "$log")
expect_eq "trim leaves whole pages" "$((size % 4096))" 0
echo "after trim" | "$K" write "$log"
expect_eq "write after trim" "$("$K" tail -n 1 "$log")" "after trim"

# usage errors and missing files
set +e
"$K" > /dev/null 2>&1; expect_eq "no command exits 2" "$?" 2
"$K" frobnicate "$log" 2> /dev/null; expect_eq "unknown command exits 2" "$?" 2
"$K" cat -f "$log" 2> /dev/null; expect_eq "bad option exits 2" "$?" 2
"$K" tail -n x "$log" 2> /dev/null; expect_eq "bad count exits 2" "$?" 2
msg=$("$K" cat "$tmp/missing.log" 2>&1); rc=$?
expect_eq "missing log exits 1" "$rc" 1
[[ "$msg" == *"missing.log: No such file or directory"* ]] && ok "missing log message" || bad "missing log message" "$msg"
"$K" --help | grep -q "^usage: keel-log" && ok "--help" || bad "--help" "no usage"
set -e

# a damaged log: garbage over a record header
dmg=$tmp/damaged.log
seq 1 100 | "$K" write "$dmg"
python3 - "$dmg" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(24 * 50)           # the header of record 51 (each is 24 bytes)
    f.write(b"\xde\xad\xbe\xef" * 4)
PY
set +e
"$K" check "$dmg" > "$tmp/dmg.out"; rc=$?
set -e
expect_eq "check exits 1 on damage" "$rc" 1
grep -q "damaged     1" "$tmp/dmg.out" && ok "check counts the damage" || bad "damage count" "$(cat "$tmp/dmg.out")"
"$K" recover "$dmg" > /dev/null && "$K" check "$dmg" > /dev/null && ok "recover repairs it" || bad "recover" "$?"
expect_eq "records around the damage survive" "$("$K" cat "$dmg" | wc -l)" 99

# writers killed with SIGKILL at random moments
crash=$tmp/crash.log
gen() { awk -v w="$1" 'BEGIN { for (i = 0; ; i++) printf "w%d %09d\n", w, i }'; }
# (each writer is killed by its pid: the subshell execs keel-log, so $! is
# the writer itself, and a writer that has not started yet still dies)
for round in 1 2 3 4 5; do
  pids=""
  for w in 1 2 3 4; do
    ( exec "$K" write "$crash" ) < <(gen $w) 2>/dev/null &
    pids="$pids $!"
  done
  sleep "0.$((RANDOM % 3 + 1))"
  kill -KILL $pids 2>/dev/null || true
  wait 2>/dev/null || true
done
"$K" recover "$crash" > /dev/null || true
"$K" check "$crash" > "$tmp/crash.out" && ok "check after SIGKILLs and recover" || bad "crash check" "$(cat "$tmp/crash.out")"
gaps=$("$K" cat "$crash" | python3 -c '
import sys
seen = {}
for line in sys.stdin:
    w, n = line.split()
    seen.setdefault(w, []).append(int(n))
gaps = 0
for w, ns in seen.items():
    # each round restarts a writer at 0: runs must be 0,1,2,... with no hole
    runs, cur = [], []
    for n in ns:
        if n == 0 and cur:
            runs.append(cur); cur = []
        cur.append(n)
    runs.append(cur)
    for r in runs:
        gaps += sum(1 for a, b in zip(r, r[1:]) if b != a + 1)
print(gaps, sum(len(v) for v in seen.values()), file=sys.stdout)
')
read -r ngaps nrec <<< "$gaps"
expect_eq "no lost record among $nrec written by killed writers" "$ngaps" 0
[ "$nrec" -gt 1000 ] && ok "killed writers wrote records ($nrec)" || bad "writers wrote" "$nrec"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]

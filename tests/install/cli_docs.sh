#!/usr/bin/env bash
# --help, the man pages and the command table cannot disagree:
#  - every command of the CLI's table (the hidden `edgeplane --list-commands`)
#    is in `edgeplane --help` and in the COMMANDS section of edgeplane.8, and
#    every command either of them lists is in the table;
#  - the options of `edgeplane --help`, `edgeplane cache build --help` and
#    `edgeplane-agent --help` are exactly the options the man pages describe
#    (edgeplane.8 OPTIONS, its cache build option list, edgeplane-agent.8 OPTIONS).
# That the table's control commands exist in the agent is tests/unit/test_commands.c.
# Needs only the built binaries: no root, no lab.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
B=${EP_BUILD:-$PWD/build}
CLI=$B/edgeplane AGENT=$B/edgeplane-agent
MAN=docs/man/edgeplane.8 AMAN=docs/man/edgeplane-agent.8

# roff to text, enough for tag lines: \- is -, no font escapes, no quotes, no macro.
unroff() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/"//g' -e 's/^\.[A-Z][A-Z]* //'; }
# man_tags FILE SECTION DEPTH: the tag line of every .TP in SECTION, .RS depth DEPTH
man_tags() {
  awk -v sec="$2" -v want="$3" '
    /^\.SH / { in_sec = ($0 == ".SH " sec); next }
    !in_sec { next }
    /^\.RS/ { d++; next }
    /^\.RE/ { d--; next }
    /^\.TP/ { if (getline > 0 && d == want) print; next }' "$1" | unroff
}
# help_block CMD... : the lines of --help output from a header matching RE to the next blank line
help_block() { local re=$1; shift; "$@" 2>/dev/null | awk -v re="$re" '$0 ~ re { on = 1; next } on && /^$/ { on = 0 } on'; }
options() { grep -oE -- '(^| )-[a-zA-Z]([ ,]|$)|--[a-z][a-z-]+' | tr -d ' ,' | sort -u; }
# same_set WHAT A_NAME A B_NAME B: ok when the two newline lists are equal, else says what differs
same_set() {
  local what=$1 an=$2 a=$3 bn=$4 b=$5 only_a only_b
  only_a=$(comm -23 <(sort -u <<<"$a") <(sort -u <<<"$b") | paste -sd, -)
  only_b=$(comm -13 <(sort -u <<<"$a") <(sort -u <<<"$b") | paste -sd, -)
  if [ -z "$only_a$only_b" ]; then ok "$what: $(sort -u <<<"$a" | wc -l) the same in $an and $bn"
  else not_ok "$what${only_a:+; only in $an: $only_a}${only_b:+; only in $bn: $only_b}"; fi
}

for bin in "$CLI" "$AGENT"; do
  [ -x "$bin" ] || { not_ok "$bin is built (make all)"; tap_done; exit 1; }
done

table=$("$CLI" --list-commands | cut -f1)
check "edgeplane --list-commands prints the table ($(wc -l <<<"$table") commands)" [ -n "$table" ]
check "--list-commands stays hidden from --help" bash -c "! '$CLI' --help | grep -q -- --list-commands"
help_cmds=$(help_block '^Commands' "$CLI" --help | grep -E '^  [a-z]' | sed 's/^  //' | grep -oE '^[a-z]+( [a-z]+)*')
same_set "CLI commands" "the table" "$table" "edgeplane --help" "$help_cmds"
man_cmds=$(man_tags "$MAN" COMMANDS 0 | grep -oE '^[a-z]+( [a-z]+)*')
same_set "CLI commands" "the table" "$table" "edgeplane.8 COMMANDS" "$man_cmds"

same_set "edgeplane options" "--help" "$(help_block '^Options' "$CLI" --help | options)" \
  "edgeplane.8 OPTIONS" "$(man_tags "$MAN" OPTIONS 0 | options)"
# -h/--help is every command's; the man page describes it once, under OPTIONS
same_set "cache build options" "cache build --help" \
  "$("$CLI" cache build --help | grep -E '^ {2,6}-' | options | grep -vxE -- '-h|--help')" \
  "edgeplane.8 (cache build)" "$(man_tags "$MAN" COMMANDS 1 | options)"
same_set "agent options" "edgeplane-agent --help" "$(help_block '^Options' "$AGENT" --help | options)" \
  "edgeplane-agent.8 OPTIONS" "$(man_tags "$AMAN" OPTIONS 0 | options)"

tap_done

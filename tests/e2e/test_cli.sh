#!/bin/bash
# The CLI skeleton: help lists every subcommand, usage errors exit 2.
. "$(dirname "$0")/lib.sh"

help=$("$FS" --help)
for c in up services sim bridge dashboard history detect billing replay status report bench trucks; do
    check_contains "--help lists '$c'" "  $c " "$help"
done
"$FS" frobnicate >/dev/null 2>&1; check_eq "unknown subcommand exits 2" 2 $?
"$FS" >/dev/null 2>&1; check_eq "no subcommand exits 2" 2 $?
"$FS" services --help >/dev/null; check_eq "services --help exits 0" 0 $?
"$FS" services --frob >/dev/null 2>&1; check_eq "unknown option exits 2" 2 $?
"$FS" services start --metrics-port 99999 >/dev/null 2>&1; check_eq "bad shared option value exits 2" 2 $?
err=$("$FS" services start -X novalue 2>&1); check_contains "-X without = says why" "key=value" "$err"
done_testing

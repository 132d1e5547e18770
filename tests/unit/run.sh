#!/usr/bin/env bash
# The cmocka unit tests of driver/mp_logic.c (run-test_logic, built by
# make check in this directory) as KTAP with the closing line
# "N passed, N failed, N skipped" (scripts/ktap.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/ktap.sh
. "$here/../../scripts/ktap.sh"

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
ktap_header
ktap_cmocka "" "$here/run-test_logic" "$tap"
ktap_done

# Shared by the command-line test scripts: check NAME EXPECTED_STATUS PATTERN -- CMD... runs CMD and
# counts a failure in $failures unless it exits with EXPECTED_STATUS and its output matches PATTERN.
failures=0
check() {
    local name=$1 want=$2 pattern=$3
    shift 4
    local out status
    out=$("$@" 2>&1)
    status=$?
    if [ "$status" -ne "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
        echo "FAIL $name: status $status (want $want), pattern '$pattern'"
        echo "$out" | tail -n 20
        failures=$((failures + 1))
    else
        echo "ok   $name"
    fi
}

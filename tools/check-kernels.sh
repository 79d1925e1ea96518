#!/usr/bin/env bash
# Checks the CPU kernels' unit tests for memory errors (out-of-bounds reads and writes, uses of
# uninitialised memory): with miri where a nightly toolchain has it, else under valgrind's
# memcheck. Not part of CI (valgrind makes the tests ~50x slower); run it after changing a kernel.
#
#   tools/check-kernels.sh            # the kernels, and the host backend's attention
#
# valgrind's virtual CPU reports AVX2 but not AVX-512, so under it the AVX2 and portable paths run;
# the AVX-512 paths are tested against them bit for bit by the same unit tests on real hardware.
set -euo pipefail
cd "$(dirname "$0")/.."
filters=(kernels:: model::host::)
if cargo +nightly miri --version >/dev/null 2>&1; then
    echo "==> cargo +nightly miri test --lib ${filters[*]}"
    exec cargo +nightly miri test --lib -- "${filters[@]}"
fi
command -v valgrind >/dev/null || { echo "error: neither miri (nightly) nor valgrind is installed" >&2; exit 2; }
bin=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable") and "lib" in m["target"]["kind"]:
        print(m["executable"])')
echo "==> valgrind memcheck: $bin ${filters[*]}"
RAYON_NUM_THREADS=2 valgrind --error-exitcode=1 --quiet --leak-check=no \
    "$bin" "${filters[@]}" --test-threads=1
echo "no memory errors"

#!/usr/bin/env bash
# Builds examples/wasi_events.rs for wasm32-wasip1 with the core only (no `client` feature, no sockets, no C
# compiler) and runs it under wasmtime (the PyPI wheel, driven from Python), checking its output.
# Installs what it needs: the rustup target and a venv with wasmtime in cargo's target directory
# (CARGO_TARGET_DIR when set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
rustup target add wasm32-wasip1 >/dev/null

target="$(bash scripts/target-dir.sh)"
venv="$target/wasi-venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import wasmtime' 2>/dev/null \
  || "$venv/bin/pip" install --quiet --disable-pip-version-check 'wasmtime>=20'

CC=/bin/false cargo build --example wasi_events --no-default-features --target wasm32-wasip1
wasm="$target/wasm32-wasip1/debug/examples/wasi_events.wasm"

out="$(mktemp)"; err="$(mktemp)"
trap 'rm -f "$out" "$err"' EXIT
status=0
"$venv/bin/python" - "$wasm" "$out" "$err" <<'PY' || status=$?
import sys
from wasmtime import Engine, ExitTrap, Linker, Module, Store, WasiConfig

wasm, out, err = sys.argv[1:4]
engine = Engine()
linker = Linker(engine)
linker.define_wasi()
store = Store(engine)
wasi = WasiConfig()
wasi.argv = ["wasi_events"]
wasi.stdout_file = out
wasi.stderr_file = err
store.set_wasi(wasi)
instance = linker.instantiate(store, Module.from_file(engine, wasm))
try:
    instance.exports(store)["_start"](store)
    code = 0
except ExitTrap as trap:
    code = trap.code
sys.exit(code)
PY
cat "$out"
cat "$err" >&2
if [[ $status -ne 0 ]]; then
  echo "wasi: the example exited with status $status" >&2
  exit 1
fi
# The example checks itself; these make sure it really ran to the end and encoded what it should.
grep -qx 'wasi_events: ok' "$out" || { echo "wasi: missing 'wasi_events: ok'" >&2; exit 1; }
grep -q '^header: occurred_at=.*+00:00$' "$out" || { echo "wasi: occurred_at header form" >&2; exit 1; }
grep -q '^delivered: typed:customer-123, any:OrderCreated, typed:customer-456, any:OrderCreated$' "$out" \
  || { echo "wasi: deliveries" >&2; exit 1; }
echo "wasi: 1 passed, 0 failed"

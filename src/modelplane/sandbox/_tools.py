"""Reference WebAssembly tools in WAT: the echo tool of the docs and the benchmark, and the probes.

Each follows the ``modelplane-json-v1`` ABI of :mod:`modelplane.sandbox._wasm` (a bump "allocator"
that always answers one fixed offset is enough for a tool that takes one argument buffer).
"""

from __future__ import annotations

_ALLOC = '(func (export "alloc") (param i32) (result i32) i32.const 8192)'
_PACK = "(i64.or (i64.shl (i64.extend_i32_u {ptr}) (i64.const 32)) (i64.extend_i32_u {len}))"

#: returns its arguments unchanged
ECHO = f"""(module
 (memory (export "memory") 1)
 {_ALLOC}
 (func (export "run") (param $p i32) (param $n i32) (result i64)
   {_PACK.format(ptr="(local.get $p)", len="(local.get $n)")}))
"""

#: never returns (stopped by its deadline)
RUNAWAY = f"""(module
 (memory (export "memory") 1)
 {_ALLOC}
 (func (export "run") (param i32 i32) (result i64) (loop $forever (br $forever)) i64.const 0))
"""

#: grows its memory until a grow is refused, then traps
GREEDY = f"""(module
 (memory (export "memory") 1)
 {_ALLOC}
 (func (export "run") (param i32 i32) (result i64)
   (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
   unreachable))
"""

#: imports a host function nobody granted
SMUGGLER = f"""(module
 (import "env" "host_exec" (func $exec (param i32) (result i32)))
 (memory (export "memory") 1)
 {_ALLOC}
 (func (export "run") (param i32 i32) (result i64) (drop (call $exec (i32.const 0))) i64.const 0))
"""

#: ``{{"granted":true}}`` when a directory is preopened (WASI fd 3), else ``{{"granted":false}}``
PREOPEN = f"""(module
 (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 100) "{{\\"granted\\":true}}")
 (data (i32.const 200) "{{\\"granted\\":false}}")
 {_ALLOC}
 (func (export "run") (param i32 i32) (result i64)
   (if (result i64) (i32.eqz (call $prestat (i32.const 3) (i32.const 512)))
     (then {_PACK.format(ptr="(i32.const 100)", len="(i32.const 16)")})
     (else {_PACK.format(ptr="(i32.const 200)", len="(i32.const 17)")}))))
"""

#: ``{{"env":"KEY=VALUE"}}`` of its one environment variable, ``{{"env":""}}`` when it has none
ENVIRON = f"""(module
 (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 2040) "{{\\"env\\":\\"")
 {_ALLOC}
 (func (export "run") (param i32 i32) (result i64) (local $size i32)
   (drop (call $sizes (i32.const 512) (i32.const 516)))
   (local.set $size (i32.load (i32.const 516)))
   (if (i32.eqz (local.get $size))
     (then (local.set $size (i32.const 1)))
     (else (drop (call $get (i32.const 600) (i32.const 2048)))))
   (i32.store16 (i32.add (i32.const 2047) (local.get $size)) (i32.const 0x7d22))
   {_PACK.format(ptr="(i32.const 2040)", len="(i32.add (local.get $size) (i32.const 9))")}))
"""

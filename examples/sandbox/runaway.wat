;; modelplane-json-v1: loops forever, until its deadline stops it
(module
 (memory (export "memory") 1)
 (func (export "alloc") (param i32) (result i32) i32.const 8192)
 (func (export "run") (param i32 i32) (result i64) (loop $forever (br $forever)) i64.const 0))

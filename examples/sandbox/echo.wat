;; modelplane-json-v1: returns its JSON arguments unchanged
(module
 (memory (export "memory") 1)
 (func (export "alloc") (param i32) (result i32) i32.const 8192)
 (func (export "run") (param $p i32) (param $n i32) (result i64)
   (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n)))))

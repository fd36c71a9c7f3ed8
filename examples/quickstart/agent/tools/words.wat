;; The quickstart's WebAssembly tool: counts the words of {"text": "..."} and answers
;; {"words": N}. The modelplane-json-v1 ABI (docs/sandbox.md): the host writes the arguments at
;; alloc's offset, run returns (pointer << 32) | length of the result. No imports: it can reach
;; nothing of the host. A word is a run of bytes above space inside the text (the third and
;; fourth quotes of the compact JSON); an escaped byte (\n, \") is part of a word.
(module
 (memory (export "memory") 1)
 (data (i32.const 0) "{\"words\":")
 (func (export "alloc") (param i32) (result i32) i32.const 1024)
 (func (export "run") (param $p i32) (param $n i32) (result i64)
   (local $end i32) (local $c i32) (local $quotes i32) (local $in i32) (local $words i32)
   (local $o i32)
   (local.set $end (i32.add (local.get $p) (local.get $n)))
   (block $done
     (loop $next
       (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
       (local.set $c (i32.load8_u (local.get $p)))
       (local.set $p (i32.add (local.get $p) (i32.const 1)))
       (if (i32.eq (local.get $c) (i32.const 92))  ;; a backslash: it and the next byte
         (then (local.set $p (i32.add (local.get $p) (i32.const 1)))
               (local.set $c (i32.const 97))))     ;; count as a letter
       (if (i32.eq (local.get $c) (i32.const 34))  ;; a quote
         (then (local.set $quotes (i32.add (local.get $quotes) (i32.const 1)))
               (local.set $in (i32.const 0))
               (br $next)))
       (br_if $next (i32.ne (local.get $quotes) (i32.const 3)))
       (if (i32.le_u (local.get $c) (i32.const 32))
         (then (local.set $in (i32.const 0)))
         (else (if (i32.eqz (local.get $in))
           (then (local.set $words (i32.add (local.get $words) (i32.const 1)))
                 (local.set $in (i32.const 1))))))
       (br $next)))
   ;; the digits backwards before a "}" at 100, then the prefix before them
   (i32.store8 (i32.const 100) (i32.const 125))
   (local.set $o (i32.const 100))
   (loop $digit
     (local.set $o (i32.sub (local.get $o) (i32.const 1)))
     (i32.store8 (local.get $o) (i32.add (i32.const 48) (i32.rem_u (local.get $words) (i32.const 10))))
     (local.set $words (i32.div_u (local.get $words) (i32.const 10)))
     (br_if $digit (local.get $words)))
   (local.set $o (i32.sub (local.get $o) (i32.const 9)))
   (memory.copy (local.get $o) (i32.const 0) (i32.const 9))
   (i64.or (i64.shl (i64.extend_i32_u (local.get $o)) (i64.const 32))
           (i64.extend_i32_u (i32.sub (i32.const 101) (local.get $o))))))

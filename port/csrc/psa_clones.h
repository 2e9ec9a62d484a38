// One clone of a hot loop per vector width, picked at load time for the CPU (GCC/Clang function
// multiversioning). Built with -ffp-contract=off and -fno-trapping-math (setup.py): no clone fuses a
// multiply-add, so every clone and its scalar tail compute the same IEEE values.
#pragma once

// Off x86 (aarch64: NEON is the baseline there) one portable version, vectorised by the compiler.
#if defined(__x86_64__) && defined(__GNUC__)
#define PSA_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PSA_VECTOR_CLONES
#endif

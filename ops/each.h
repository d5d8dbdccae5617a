/* EACH, the blocked loop that the row kernels of ops/ and nn/ are written
 * with (private: not installed). */
#ifndef TG_OPS_EACH_H
#define TG_OPS_EACH_H

#include <stdint.h>

/* EACH(n, body) runs body for i = 0 .. n-1 (i is an int64_t): in blocks of
 * EACH_BLOCK, whose inner loop has a length the compiler knows, then the
 * n % EACH_BLOCK elements left. That is the loop shape GCC vectorises even
 * at -O2, provided the arrays the body writes are restrict parameters of the
 * enclosing function (they never share memory with what it reads). The body
 * is compiled twice. */
#define EACH_BLOCK 16
#define EACH(N, ...)                                                          \
    do {                                                                      \
        int64_t n_ = (N), blocked_ = n_ - n_ % EACH_BLOCK;                    \
        for (int64_t b_ = 0; b_ < blocked_; b_ += EACH_BLOCK)                 \
            for (int64_t k_ = 0; k_ < EACH_BLOCK; k_++) {                     \
                int64_t i = b_ + k_;                                          \
                __VA_ARGS__                                                   \
            }                                                                 \
        for (int64_t i = blocked_; i < n_; i++) {                             \
            __VA_ARGS__                                                       \
        }                                                                     \
    } while (0)

#endif

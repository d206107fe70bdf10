/* Peak multiply-accumulate rate of one core's vector units (x86-64).
 *
 * `peak` or `peak vnni` (AVX-512 VNNI): 12 independent accumulator chains (more than latency x
 * issue width, so throughput-bound) of VPDPBUSD zmm (64 uint8 x int8 MACs each) and VFMADD231PS
 * zmm (16 fp32 FMAs each).
 * `peak avx2` (AVX2 without VNNI): VPMADDWD ymm (16 int16 x int16 MACs into int32, the exact
 * int8 path XNNPACK takes on AVX2 after widening to 16 bits) and VFMADD231PS ymm (8 fp32 FMAs).
 * Best of 20 short passes (a shared machine leaves some of them undisturbed). Inline assembly, so
 * the compiler cannot merge the identical chains. Prints one JSON line.
 * Built and run by benchmarks/floor.py: cc -O2 peak.c -o peak
 */
#include <stdio.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

#define X12(op) op " %%zmm0, %%zmm1, %%zmm2\n" op " %%zmm0, %%zmm1, %%zmm3\n" op " %%zmm0, %%zmm1, %%zmm4\n" \
  op " %%zmm0, %%zmm1, %%zmm5\n" op " %%zmm0, %%zmm1, %%zmm6\n" op " %%zmm0, %%zmm1, %%zmm7\n" \
  op " %%zmm0, %%zmm1, %%zmm8\n" op " %%zmm0, %%zmm1, %%zmm9\n" op " %%zmm0, %%zmm1, %%zmm10\n" \
  op " %%zmm0, %%zmm1, %%zmm11\n" op " %%zmm0, %%zmm1, %%zmm12\n" op " %%zmm0, %%zmm1, %%zmm13\n"
#define Y12(op) op " %%ymm0, %%ymm1, %%ymm2\n" op " %%ymm0, %%ymm1, %%ymm3\n" op " %%ymm0, %%ymm1, %%ymm4\n" \
  op " %%ymm0, %%ymm1, %%ymm5\n" op " %%ymm0, %%ymm1, %%ymm6\n" op " %%ymm0, %%ymm1, %%ymm7\n" \
  op " %%ymm0, %%ymm1, %%ymm8\n" op " %%ymm0, %%ymm1, %%ymm9\n" op " %%ymm0, %%ymm1, %%ymm10\n" \
  op " %%ymm0, %%ymm1, %%ymm11\n" op " %%ymm0, %%ymm1, %%ymm12\n" op " %%ymm0, %%ymm1, %%ymm13\n"
#define CLOBBER "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"

#include <string.h>

int main(int argc, char **argv) {
#if defined(__x86_64__)
  const long iters = 10000000;
  double best_int8 = 0, best_fp32 = 0;
  if (argc > 1 && strcmp(argv[1], "avx2") == 0) {
    for (int pass = 0; pass < 20; pass++) {
      long n = iters;
      double t = now();
      __asm__ volatile("1:\n" Y12("vpmaddwd") "dec %0\njnz 1b\n" : "+r"(n) :: CLOBBER);
      t = now() - t;
      if (iters * 12.0 * 16 / t > best_int8) best_int8 = iters * 12.0 * 16 / t;
      n = iters;
      t = now();
      __asm__ volatile("1:\n" Y12("vfmadd231ps") "dec %0\njnz 1b\n" : "+r"(n) :: CLOBBER);
      t = now() - t;
      if (iters * 12.0 * 8 / t > best_fp32) best_fp32 = iters * 12.0 * 8 / t;
    }
    printf("{\"int8_gmacs\": %.2f, \"fp32_gmacs\": %.2f}\n", best_int8 / 1e9, best_fp32 / 1e9);
    return 0;
  }
  for (int pass = 0; pass < 20; pass++) {
    long n = iters;
    double t = now();
    __asm__ volatile("1:\n" X12("vpdpbusd") "dec %0\njnz 1b\n" : "+r"(n) :: CLOBBER);
    t = now() - t;
    if (iters * 12.0 * 64 / t > best_int8) best_int8 = iters * 12.0 * 64 / t;
    n = iters;
    t = now();
    __asm__ volatile("1:\n" X12("vfmadd231ps") "dec %0\njnz 1b\n" : "+r"(n) :: CLOBBER);
    t = now() - t;
    if (iters * 12.0 * 16 / t > best_fp32) best_fp32 = iters * 12.0 * 16 / t;
  }
  printf("{\"int8_gmacs\": %.2f, \"fp32_gmacs\": %.2f}\n", best_int8 / 1e9, best_fp32 / 1e9);
  return 0;
#else
  return 2; /* no kernel for this architecture */
#endif
}

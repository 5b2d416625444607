/*
 * Answers oneMKL's "is this an Intel CPU?" question with yes.
 *
 * oneMKL (statically linked into PyTorch's x86-64 wheels) picks its GEMM kernels by CPU
 * vendor before it looks at the instruction set, so an AMD CPU with AVX-512 (Zen 4, Zen 5)
 * gets the AVX2 kernels: fp32 matmuls run at about 40% of what the core can do. Worker
 * processes are started with this library in LD_PRELOAD (workers/mkl_dispatch.py), which
 * interposes MKL's own vendor check; MKL then dispatches on the CPUID feature bits as it
 * does on Intel. Results stay full fp32; only the kernel choice changes.
 */
int mkl_serv_intel_cpu_true(void) { return 1; }

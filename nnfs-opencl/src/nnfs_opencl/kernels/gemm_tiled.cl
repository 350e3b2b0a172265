// gemm for GPUs: C ← α·op(A)·op(B) + β·C, one work-group per BM × BN tile of C.
//
// The classic GPU scheme: the TM × TN work-items of a group copy a KC-deep slice of op(A)
// (BM × KC) and op(B) (KC × BN) into local memory together, reading global memory along its
// contiguous direction so neighbouring work-items read neighbouring addresses; then each
// work-item multiplies its MR × NR entries of the tile, which are spread with strides TM and
// TN over the tile so that neighbouring work-items read neighbouring local memory. The slices
// are padded with zeros, so only the write-back tests bounds. No memory is allocated beyond
// the local arrays.
//
// Parameters (-D): real, TM, TN (work-group shape), MR, NR (entries per work-item), KC.

#ifdef USE_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define BM (TM * MR)
#define BN (TN * NR)
#define THREADS (TM * TN)

inline void gemm_tile(const int m, const int n, const int k, const real alpha,
                      __global const real* a, const int lda, const int trans_a,
                      __global const real* b, const int ldb, const int trans_b,
                      const real beta, __global real* c, const int ldc,
                      __local real* as, __local real* bs) {
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int t = ty * TM + tx;
  const int i0 = get_group_id(0) * BM, j0 = get_group_id(1) * BN;
  real acc[MR][NR];
#pragma unroll
  for (int u = 0; u < MR; ++u)
#pragma unroll
    for (int w = 0; w < NR; ++w) acc[u][w] = 0;
  for (int p0 = 0; p0 < k; p0 += KC) {
    barrier(CLK_LOCAL_MEM_FENCE);  // everybody is done with the previous slice
    for (int e = t; e < BM * KC; e += THREADS) {  // as[p][i] = op(A)[i0 + i, p0 + p]
      const int i = trans_a ? e / KC : e % BM;
      const int p = trans_a ? e % KC : e / BM;
      const int gi = i0 + i, gp = p0 + p;
      real x = 0;
      if (gi < m && gp < k) x = trans_a ? a[gp + (long)gi * lda] : a[gi + (long)gp * lda];
      as[p * BM + i] = x;
    }
    for (int e = t; e < BN * KC; e += THREADS) {  // bs[p][j] = op(B)[p0 + p, j0 + j]
      const int j = trans_b ? e % BN : e / KC;
      const int p = trans_b ? e / BN : e % KC;
      const int gj = j0 + j, gp = p0 + p;
      real x = 0;
      if (gj < n && gp < k) x = trans_b ? b[gj + (long)gp * ldb] : b[gp + (long)gj * ldb];
      bs[p * BN + j] = x;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int p = 0; p < KC; ++p) {  // acc += op(A)[:, p] · op(B)[p, :], in registers
      real av[MR], bv[NR];
#pragma unroll
      for (int u = 0; u < MR; ++u) av[u] = as[p * BM + u * TM + tx];
#pragma unroll
      for (int w = 0; w < NR; ++w) bv[w] = bs[p * BN + w * TN + ty];
#pragma unroll
      for (int u = 0; u < MR; ++u)
#pragma unroll
        for (int w = 0; w < NR; ++w) acc[u][w] += av[u] * bv[w];
    }
  }
#pragma unroll
  for (int w = 0; w < NR; ++w) {
    const int gj = j0 + w * TN + ty;
#pragma unroll
    for (int u = 0; u < MR; ++u) {
      const int gi = i0 + u * TM + tx;
      if (gi < m && gj < n) {
        __global real* out = c + gi + (long)gj * ldc;
        *out = beta == 0 ? alpha * acc[u][w] : alpha * acc[u][w] + beta * *out;
      }
    }
  }
}

#define GEMM_KERNEL(name, TRANS_A, TRANS_B)                                                \
  __kernel __attribute__((reqd_work_group_size(TM, TN, 1)))                                \
  void name(const int m, const int n, const int k, const real alpha,                      \
            __global const real* a, const long ao, const int lda,                          \
            __global const real* b, const long bo, const int ldb, const real beta,         \
            __global real* c, const long co, const int ldc) {                              \
    __local real as[BM * KC];                                                              \
    __local real bs[BN * KC];                                                              \
    gemm_tile(m, n, k, alpha, a + ao, lda, TRANS_A, b + bo, ldb, TRANS_B, beta, c + co,    \
              ldc, as, bs);                                                                \
  }

GEMM_KERNEL(gemm_nn, 0, 0)
GEMM_KERNEL(gemm_nt, 0, 1)
GEMM_KERNEL(gemm_tn, 1, 0)
GEMM_KERNEL(gemm_tt, 1, 1)

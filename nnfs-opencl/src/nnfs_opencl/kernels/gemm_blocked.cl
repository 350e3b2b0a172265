// gemm for CPU devices: C ← α·op(A)·op(B) + β·C, one work-item per BM × BN block of C.
//
// A CPU OpenCL driver (PoCL) runs the work-items of a work-group as a loop, which breaks up the
// register blocking a CPU needs; so here a work-group is one work-item, and it does what a
// CPU BLAS does (the BLIS scheme): for each KC-deep slice of the product it copies its block
// of op(A) and op(B) into local memory (on a CPU: memory that stays in cache), laid out so
// that the innermost loop reads both sequentially, then multiplies MR × NR micro-tiles kept in
// vector registers. The copies are padded with zeros, so the micro-tiles never test bounds;
// only the write-back does. No memory is allocated beyond the local arrays.
//
// Parameters (-D): real, VW (vector width), MV (vectors per micro-tile column), NR (micro-tile
// columns), MB, NB (micro-tiles per block down and across), KC (depth of a slice).
// Matrices are column-major windows: pointer, offset (elements) and leading dimension.

#ifdef USE_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define MR (MV * VW)
#define BM (MB * MR)
#define BN (NB * NR)
#define realV CAT(real, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

// As[r][p][q] = op(A)[i0 + r·MR + q, p0 + p]: micro-panel r, MR rows for each p. Each copy
// loop runs along the direction in which global memory is contiguous; rows past m are zeros.
inline void pack_a(__local real* as, __global const real* a, const int lda, const int trans,
                   const int m, const int i0, const int p0, const int kc) {
  for (int r = 0; r < MB; ++r) {
    __local real* panel = as + r * KC * MR;
    const int rows = clamp(m - (i0 + r * MR), 0, MR);
    if (rows == 0) break;  // past the last row: never read
    if (trans) {  // op(A)[i, p] = A[p, i]: contiguous in p
      for (int q = 0; q < rows; ++q) {
        __global const real* column = a + (long)(i0 + r * MR + q) * lda + p0;
        for (int p = 0; p < kc; ++p) panel[p * MR + q] = column[p];
      }
    } else {  // A[i, p] at i + p·lda: contiguous in i
      for (int p = 0; p < kc; ++p) {
        __global const real* column = a + (long)(p0 + p) * lda + i0 + r * MR;
        for (int q = 0; q < rows; ++q) panel[p * MR + q] = column[q];
      }
    }
    for (int p = 0; p < kc; ++p)
      for (int q = rows; q < MR; ++q) panel[p * MR + q] = 0;
  }
}

// Bs[s][p][q] = op(B)[p0 + p, j0 + s·NR + q]: micro-panel s, NR columns for each p.
inline void pack_b(__local real* bs, __global const real* b, const int ldb, const int trans,
                   const int n, const int j0, const int p0, const int kc) {
  for (int s = 0; s < NB; ++s) {
    __local real* panel = bs + s * KC * NR;
    const int cols = clamp(n - (j0 + s * NR), 0, NR);
    if (cols == 0) break;
    if (trans) {  // op(B)[p, j] = B[j, p] at j + p·ldb: contiguous in j
      for (int p = 0; p < kc; ++p) {
        __global const real* column = b + (long)(p0 + p) * ldb + j0 + s * NR;
        for (int q = 0; q < cols; ++q) panel[p * NR + q] = column[q];
      }
    } else {  // B[p, j] at p + j·ldb: contiguous in p
      for (int q = 0; q < cols; ++q) {
        __global const real* column = b + (long)(j0 + s * NR + q) * ldb + p0;
        for (int p = 0; p < kc; ++p) panel[p * NR + q] = column[p];
      }
    }
    for (int p = 0; p < kc; ++p)
      for (int q = cols; q < NR; ++q) panel[p * NR + q] = 0;
  }
}

inline void gemm_block(const int m, const int n, const int k, const real alpha,
                       __global const real* a, const int lda, const int trans_a,
                       __global const real* b, const int ldb, const int trans_b,
                       const real beta, __global real* c, const int ldc,
                       __local realV* as, __local real* bs) {
  const int i0 = get_group_id(0) * BM, j0 = get_group_id(1) * BN;
  for (int p0 = 0; p0 < k; p0 += KC) {
    const int kc = min(KC, k - p0);
    pack_a((__local real*)as, a, lda, trans_a, m, i0, p0, kc);
    pack_b(bs, b, ldb, trans_b, n, j0, p0, kc);
    const bool first = p0 == 0;  // the first slice applies β, the others add to C
    for (int r = 0; r < MB && i0 + r * MR < m; ++r) {
      const int gi = i0 + r * MR;
      __local const realV* ap = as + r * KC * MV;
      for (int s = 0; s < NB && j0 + s * NR < n; ++s) {
        const int gj = j0 + s * NR;
        __local const real* bp = bs + s * KC * NR;
        // the micro-tile, in registers: the loops over it are unrolled, or its entries
        // would live in memory
        realV acc[MV][NR];
#pragma unroll
        for (int v = 0; v < MV; ++v)
#pragma unroll
          for (int w = 0; w < NR; ++w) acc[v][w] = (realV)(0);
        for (int p = 0; p < kc; ++p) {  // acc += op(A)[:, p] · op(B)[p, :]
          realV av[MV];
#pragma unroll
          for (int v = 0; v < MV; ++v) av[v] = ap[p * MV + v];
#pragma unroll
          for (int w = 0; w < NR; ++w) {
            const realV bv = (realV)(bp[p * NR + w]);
#pragma unroll
            for (int v = 0; v < MV; ++v) acc[v][w] += av[v] * bv;
          }
        }
        const bool full = gi + MR <= m;
#pragma unroll
        for (int w = 0; w < NR; ++w) {
          if (gj + w >= n) break;
          __global real* out = c + gi + (long)(gj + w) * ldc;
#pragma unroll
          for (int v = 0; v < MV; ++v) {
            realV value = alpha * acc[v][w];
            if (full) {  // C = α·acc + β·C (β = 0: C is not read), then C += α·acc
              if (!first) value += VLOAD(0, out + v * VW);
              else if (beta != 0) value += beta * VLOAD(0, out + v * VW);
              VSTORE(value, 0, out + v * VW);
            } else {
              real lanes[VW];
              VSTORE(value, 0, lanes);
              for (int l = 0; l < VW && gi + v * VW + l < m; ++l) {
                const int row = v * VW + l;
                real y = lanes[l];
                if (!first) y += out[row];
                else if (beta != 0) y += beta * out[row];
                out[row] = y;
              }
            }
          }
        }
      }
    }
  }
}

// One kernel per pair of transposes, so each copy loop is compiled for its access pattern.
#define GEMM_KERNEL(name, TRANS_A, TRANS_B)                                                \
  __kernel __attribute__((reqd_work_group_size(1, 1, 1)))                                  \
  void name(const int m, const int n, const int k, const real alpha,                      \
            __global const real* a, const long ao, const int lda,                          \
            __global const real* b, const long bo, const int ldb, const real beta,         \
            __global real* c, const long co, const int ldc) {                              \
    __local realV as[MB * MV * KC];                                                        \
    __local real bs[NB * NR * KC];                                                         \
    gemm_block(m, n, k, alpha, a + ao, lda, TRANS_A, b + bo, ldb, TRANS_B, beta, c + co,   \
               ldc, as, bs);                                                               \
  }

GEMM_KERNEL(gemm_nn, 0, 0)
GEMM_KERNEL(gemm_nt, 0, 1)
GEMM_KERNEL(gemm_tn, 1, 0)
GEMM_KERNEL(gemm_tt, 1, 1)

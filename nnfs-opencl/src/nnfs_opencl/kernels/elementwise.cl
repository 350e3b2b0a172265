// The vector math of nnfs on OpenCL: BLAS level 1 and 2, activations, costs, reductions.
//
// Built once per factory with -D real=float|double and -D GROUP=<local size, a power of 2>.
// Every matrix and vector is a contiguous window of a buffer: a pointer and an offset in
// elements (long); a matrix is column-major with leading dimension = rows. Kernels are
// launched on a global size rounded up to GROUP, so each checks its index against n.

#ifdef USE_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

// --- BLAS level 1 -----------------------------------------------------------------------

__kernel void fill(const long n, __global real* x, const long xo, const real value) {
  const long e = get_global_id(0);
  if (e < n) x[xo + e] = value;
}

__kernel void axpy(const long n, const real alpha, __global const real* x, const long xo,
                   __global real* y, const long yo) {
  const long e = get_global_id(0);
  if (e < n) y[yo + e] += alpha * x[xo + e];  // y ← αx + y
}

__kernel void scal(const long n, const real alpha, __global real* x, const long xo) {
  const long e = get_global_id(0);
  if (e < n) x[xo + e] *= alpha;  // x ← αx
}

__kernel void sub(const long n, __global const real* x, const long xo,
                  __global const real* y, const long yo, __global real* out, const long oo) {
  const long e = get_global_id(0);
  if (e < n) out[oo + e] = x[xo + e] - y[yo + e];
}

__kernel void mul(const long n, __global const real* x, const long xo,
                  __global const real* y, const long yo, __global real* out, const long oo) {
  const long e = get_global_id(0);
  if (e < n) out[oo + e] = x[xo + e] * y[yo + e];  // x ⊙ y
}

// --- BLAS level 2 -----------------------------------------------------------------------

// y ← α·A·x + β·y, A rows × cols: one work-item per row, reading along the row.
__kernel void gemv_n(const int rows, const int cols, const real alpha,
                     __global const real* a, const long ao, __global const real* x, const long xo,
                     const real beta, __global real* y, const long yo) {
  const int i = get_global_id(0);
  if (i >= rows) return;
  real acc = 0;
  __global const real* row = a + ao + i;
  for (int j = 0; j < cols; ++j) acc += row[(long)j * rows] * x[xo + j];
  y[yo + i] = beta == 0 ? alpha * acc : alpha * acc + beta * y[yo + i];  // β = 0 ignores y
}

// y ← α·Aᵀ·x + β·y: one work-group per column of A, its work-items summing that column.
__kernel void gemv_t(const int rows, const int cols, const real alpha,
                     __global const real* a, const long ao, __global const real* x, const long xo,
                     const real beta, __global real* y, const long yo) {
  __local real sums[GROUP];
  const int j = get_group_id(0), t = get_local_id(0);
  __global const real* column = a + ao + (long)j * rows;
  real acc = 0;
  for (int i = t; i < rows; i += GROUP) acc += column[i] * x[xo + i];
  sums[t] = acc;
  for (int width = GROUP / 2; width > 0; width /= 2) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (t < width) sums[t] += sums[t + width];
  }
  if (t == 0) y[yo + j] = beta == 0 ? alpha * sums[0] : alpha * sums[0] + beta * y[yo + j];
}

// A ← A + α·x·yᵀ (BLAS ger), over the rows·cols entries of A.
__kernel void rank1_update(const long n, const int rows, const real alpha,
                           __global const real* x, const long xo, __global const real* y,
                           const long yo, __global real* a, const long ao) {
  const long e = get_global_id(0);
  if (e < n) a[ao + e] += alpha * x[xo + e % rows] * y[yo + e / rows];
}

// --- activations, each kind's forward and backward side by side ------------------------
//
// forward:  out ← f(z + b), b one entry per row (optional); out may be z
// backward: δ ← δ ⊙ f'(z), the derivative taken through the output a = f(z)

#define ACTIVATION(name, formula)                                                          \
  __kernel void name(const long n, const int rows, __global const real* z, const long zo,  \
                     __global const real* b, const long bo, const int biased,              \
                     __global real* out, const long oo) {                                  \
    const long e = get_global_id(0);                                                       \
    if (e >= n) return;                                                                    \
    const real s = biased ? z[zo + e] + b[bo + e % rows] : z[zo + e];                      \
    out[oo + e] = formula;                                                                 \
  }

#define BACKWARD(name, factor)                                                             \
  __kernel void name(const long n, const int rows, __global const real* a, const long ao,  \
                     __global real* delta, const long dlo) {                               \
    const long e = get_global_id(0);                                                       \
    if (e >= n) return;                                                                    \
    const real y = a[ao + e];                                                              \
    delta[dlo + e] *= factor;                                                              \
  }

// linear: f(s) = s, f' = 1 (the host runs no backward kernel)
ACTIVATION(activation_linear, s)

// sigmoid: σ(s) = ½·tanh(½s) + ½, which never overflows; σ' = a(1 − a)
inline real sigmoid_of(const real s) { return (real)0.5 * tanh((real)0.5 * s) + (real)0.5; }
ACTIVATION(activation_sigmoid, sigmoid_of(s))
BACKWARD(activation_backward_sigmoid, y * (1 - y))

// tanh: f(s) = tanh s; tanh' = 1 − a²
ACTIVATION(activation_tanh, tanh(s))
BACKWARD(activation_backward_tanh, 1 - y * y)

// relu: f(s) = max(s, 0); relu' = 1 where a > 0, else 0
ACTIVATION(activation_relu, fmax(s, (real)0))
BACKWARD(activation_backward_relu, (y > 0 ? (real)1 : (real)0))

// softmax of each column: exp(s − max s) / Σ exp(s − max s); one work-item per column.
__kernel void activation_softmax(const long n, const int rows, __global const real* z,
                                 const long zo, __global const real* b, const long bo,
                                 const int biased, __global real* out, const long oo) {
  const long j = get_global_id(0);
  if (j >= n / rows) return;
  __global const real* zc = z + zo + j * rows;
  __global real* oc = out + oo + j * rows;
  real top = -INFINITY;
  for (int i = 0; i < rows; ++i) top = fmax(top, biased ? zc[i] + b[bo + i] : zc[i]);
  real total = 0;
  for (int i = 0; i < rows; ++i) {
    const real e = exp((biased ? zc[i] + b[bo + i] : zc[i]) - top);
    oc[i] = e;  // out may be z: z[i] is read just before
    total += e;
  }
  for (int i = 0; i < rows; ++i) oc[i] /= total;
}

// softmax backward: each column g of δ becomes a ⊙ (g − aᵀg); one work-item per column.
__kernel void activation_backward_softmax(const long n, const int rows, __global const real* a,
                                          const long ao, __global real* delta, const long dlo) {
  const long j = get_global_id(0);
  if (j >= n / rows) return;
  __global const real* ac = a + ao + j * rows;
  __global real* dc = delta + dlo + j * rows;
  real dot = 0;
  for (int i = 0; i < rows; ++i) dot += ac[i] * dc[i];
  for (int i = 0; i < rows; ++i) dc[i] = ac[i] * (dc[i] - dot);
}

// --- reductions: each work-group writes one partial sum, the host adds them ---------------

inline void reduce_group(real acc, __local real* sums, __global real* partial) {
  const int t = get_local_id(0);
  sums[t] = acc;
  for (int width = GROUP / 2; width > 0; width /= 2) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (t < width) sums[t] += sums[t + width];
  }
  if (t == 0) partial[get_group_id(0)] = sums[0];
}

// nrm2 without overflow or underflow: a sum of squares is kept as a pair (s, q) meaning
// s²·q, s the largest |x| seen, so every square added is (|x|/s)² ≤ 1 (the scaled sum of
// reference BLAS's nrm2). Each work-item adds its entries, the work-group combines the
// pairs, and group g writes s, q and the sum of its non-finite |x| (inf or NaN, which
// must come through) to partial[g], partial[G + g] and partial[2G + g], G groups in all.

// (s, q) ← the pair of s²·q + t²·r
inline void add_scaled(real* s, real* q, const real t, const real r) {
  if (t > *s) {
    const real ratio = *s / t;
    *q = r + *q * ratio * ratio;
    *s = t;
  } else if (t > 0) {
    const real ratio = t / *s;
    *q += r * ratio * ratio;
  }
}

__kernel void nrm2_scaled(const long n, __global const real* x, const long xo,
                          __global real* partial) {
  __local real scales[GROUP], sums[GROUP], odd[GROUP];
  real s = 0, q = 0, unusual = 0;
  for (long e = get_global_id(0); e < n; e += get_global_size(0)) {
    const real v = fabs(x[xo + e]);
    if (isfinite(v)) {
      add_scaled(&s, &q, v, 1);
    } else {
      unusual += v;  // inf + NaN = NaN, inf + inf = inf
    }
  }
  const int t = get_local_id(0);
  scales[t] = s;
  sums[t] = q;
  odd[t] = unusual;
  for (int width = GROUP / 2; width > 0; width /= 2) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (t < width) {
      real s1 = scales[t], q1 = sums[t];
      add_scaled(&s1, &q1, scales[t + width], sums[t + width]);
      scales[t] = s1;
      sums[t] = q1;
      odd[t] += odd[t + width];
    }
  }
  if (t == 0) {
    const long g = get_group_id(0), groups = get_num_groups(0);
    partial[g] = scales[0];
    partial[groups + g] = sums[0];
    partial[2 * groups + g] = odd[0];
  }
}

// The terms of a cost over all entries; eps clips a inside the logarithms.
#define COST(name, term)                                                                   \
  __kernel void name(const long n, __global const real* y, const long yo,                 \
                     __global const real* a, const long ao, const real eps,                \
                     __global real* partial) {                                             \
    __local real sums[GROUP];                                                              \
    real acc = 0;                                                                          \
    for (long e = get_global_id(0); e < n; e += get_global_size(0)) {                      \
      const real t = y[yo + e], v = a[ao + e];                                             \
      const real c = clamp(v, eps, 1 - eps);                                               \
      acc += term;                                                                         \
    }                                                                                      \
    reduce_group(acc, sums, partial);                                                      \
  }

COST(cost_quadratic, (v - t) * (v - t))
COST(cost_binary_cross_entropy, -(t * log(c) + (1 - t) * log(1 - c)))
COST(cost_categorical_cross_entropy, -t * log(c))

// --- optimizers: one fused pass over parameters, gradient and state ----------------------
//
// p ← the rule's update, element by element (see nnfs.kinds.OptimizerKind). The per-step
// numbers (eta ... root) are set as the kernel's arguments each time the step is queued.
// g' = g + λ·d⊙p where weight decay is added to the gradient; decayed = 0: no decay mask.
// State vectors a rule does not keep are given as p and never touched.

#define OPTIMIZER(name, body)                                                              \
  __kernel void name(const long n, __global real* p, const long po, __global real* g,      \
                     const long go, __global real* s0, const long s0o, __global real* s1,   \
                     const long s1o, __global const real* d, const long dof,                \
                     const int decayed, const real eta, const real decay,                   \
                     const real momentum, const real beta1, const real beta2,               \
                     const real eps, const real step_size, const real root) {               \
    const long e = get_global_id(0);                                                       \
    if (e >= n) return;                                                                    \
    const real mask = decayed ? d[dof + e] : (real)0;                                      \
    real pe = p[po + e];                                                                   \
    real ge = g[go + e];                                                                   \
    body                                                                                   \
  }

OPTIMIZER(optimizer_sgd,
          ge += decay * mask * pe;                         /* g' = g + λ·d⊙p */
          p[po + e] = pe - eta * ge;)                      /* p ← p − η·g' */

OPTIMIZER(optimizer_momentum,
          ge += decay * mask * pe;
          const real u = momentum * s0[s0o + e] + ge;      /* u ← μ·u + g' */
          s0[s0o + e] = u;
          p[po + e] = pe - eta * u;)                       /* p ← p − η·u */

OPTIMIZER(optimizer_nesterov,
          ge += decay * mask * pe;
          const real u = momentum * s0[s0o + e] + ge;      /* u ← μ·u + g' */
          s0[s0o + e] = u;
          p[po + e] = pe - eta * (ge + momentum * u);)     /* p ← p − η·(g' + μ·u) */

OPTIMIZER(optimizer_adam,
          ge += decay * mask * pe;
          const real m = beta1 * s0[s0o + e] + (1 - beta1) * ge;        /* m ← β₁m + (1 − β₁)g' */
          const real v = beta2 * s1[s1o + e] + (1 - beta2) * ge * ge;   /* v ← β₂v + (1 − β₂)g'² */
          s0[s0o + e] = m;
          s1[s1o + e] = v;
          p[po + e] = pe - step_size * m / (sqrt(v) / root + eps);)     /* p ← p − α·m/(√v/c + ε) */

OPTIMIZER(optimizer_adamw,
          pe -= eta * decay * mask * pe;                                /* p ← p − η·λ·d⊙p */
          const real m = beta1 * s0[s0o + e] + (1 - beta1) * ge;
          const real v = beta2 * s1[s1o + e] + (1 - beta2) * ge * ge;
          s0[s0o + e] = m;
          s1[s1o + e] = v;
          p[po + e] = pe - step_size * m / (sqrt(v) / root + eps);)

// --- dropout: masks from Philox-4x32-10 (see nnfs.philox) ---------------------------------
//
// Entry (i, j) of the rows × cols mask takes element k = (first + j)·rows + i of the stream
// keyed by (key0, key1) at step: word k mod 4 of Philox at counter (b, b >> 32, step,
// step >> 32) with b = k / 4; the entry is 0 when the word is below threshold, else scale.
// One work-item per Philox block (four entries); step and first are set at each queueing.

__kernel void dropout_mask(const long n, const long rows, __global real* mask, const long mo,
                           const uint key0, const uint key1, const ulong threshold,
                           const real scale, const ulong step, const ulong first) {
  const ulong start = first * (ulong)rows;  // the stream element of entry 0
  const ulong b = start / 4 + get_global_id(0);
  if (4 * b >= start + (ulong)n) return;
  uint c0 = (uint)b, c1 = (uint)(b >> 32), c2 = (uint)step, c3 = (uint)(step >> 32);
  uint k0 = key0, k1 = key1;
  for (int round = 0; round < 10; ++round) {
    if (round) {
      k0 += 0x9E3779B9u;  // the Weyl constants bump the key before every round but the first
      k1 += 0xBB67AE85u;
    }
    const uint hi0 = mul_hi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint hi1 = mul_hi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  const uint words[4] = {c0, c1, c2, c3};
  for (int w = 0; w < 4; ++w) {
    const ulong k = 4 * b + w;
    if (k >= start && k < start + (ulong)n)
      mask[mo + (long)(k - start)] = words[w] >= threshold ? scale : (real)0;
  }
}

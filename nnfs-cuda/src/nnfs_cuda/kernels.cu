// The CUDA kernels of nnfs-cuda: the vector math of nnfs's factory contract (the matrix
// products go to cuBLAS). Each operation is one fused pass that reads and writes every entry
// once: the bias is added inside the activation, the derivative is multiplied into delta in
// place, and the cost is reduced to one partial sum per block without an array of terms.
//
// Every kernel is a template over T (float or double); nnfs_cuda/device.py compiles both
// instantiations once per factory with NVRTC (through cupy.RawModule).
//
// nnfs_cuda/kernels.py reads this file to learn the kernels' parameters, so keep to:
//   * one `template <typename T> __global__ void NAME(PARAMETERS)` line per kernel;
//   * parameter types among: const T*, T*, T, int, long long, double, double*,
//     const long long*;
//   * the constants and enums below written as they are.
//
// Layout: a matrix is column-major with leading dimension = rows, so column j of a
// rows × cols matrix is the `rows` entries from j·rows on. Element kernels walk their range
// with a grid-stride loop, so any grid is correct; the launch only decides the speed.

constexpr int THREADS = 256;  // threads per block; cost_partials needs exactly this many

enum Activation { LINEAR = 0, SIGMOID = 1, TANH = 2, RELU = 3 };
enum Cost { QUADRATIC = 0, BINARY_CROSS_ENTROPY = 1, CATEGORICAL_CROSS_ENTROPY = 2 };

#define FOR_EACH(i, n)                                                        \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// --- the activations: each kind's f(s) beside its f'(z), taken through a = f(z) -----------

// sigmoid: σ(s) = ½·tanh(½s) + ½, which never overflows; σ' = a(1 − a)
template <typename T>
__device__ T sigmoid_forward(T s) { return T(0.5) * tanh(T(0.5) * s) + T(0.5); }
template <typename T>
__device__ T sigmoid_backward(T a) { return a * (T(1) - a); }

// tanh: f(s) = tanh s; tanh' = 1 − a²
template <typename T>
__device__ T tanh_forward(T s) { return tanh(s); }
template <typename T>
__device__ T tanh_backward(T a) { return T(1) - a * a; }

// relu: f(s) = max(s, 0); relu' = 1 where a > 0, else 0
template <typename T>
__device__ T relu_forward(T s) { return s > T(0) ? s : T(0); }
template <typename T>
__device__ T relu_backward(T a) { return a > T(0) ? T(1) : T(0); }

// linear: f(s) = s, f' = 1; softmax is its own pair of kernels, below.
template <typename T>
__device__ T activate(int kind, T s) {
    switch (kind) {
    case SIGMOID: return sigmoid_forward(s);
    case TANH: return tanh_forward(s);
    case RELU: return relu_forward(s);
    default: return s;  // LINEAR
    }
}

template <typename T>
__device__ T derivative(int kind, T a) {
    switch (kind) {
    case SIGMOID: return sigmoid_backward(a);
    case TANH: return tanh_backward(a);
    case RELU: return relu_backward(a);
    default: return T(1);  // LINEAR
    }
}

// out = f(z + bias·1ᵀ) element by element; has_bias = 0 ignores bias. out may be z.
template <typename T>
__global__ void bias_activation(const T* z, const T* bias, int has_bias, T* out, int kind, long long rows, long long n) {
    FOR_EACH(i, n) {
        T s = z[i];
        if (has_bias) s += bias[i % rows];
        out[i] = activate(kind, s);
    }
}

// delta ⊙= f'(z), through a = f(z).
template <typename T>
__global__ void activation_backward(const T* a, T* delta, int kind, long long n) {
    FOR_EACH(i, n) delta[i] *= derivative(kind, a[i]);
}

// Each column of out = softmax(column of z + bias): exp(s − max s) / Σ exp(s − max s).
// One thread per column (sample); out may be z, since a thread reads its column before writing.
template <typename T>
__global__ void bias_softmax(const T* z, const T* bias, int has_bias, T* out, long long rows, long long cols) {
    FOR_EACH(j, cols) {
        const T* zj = z + j * rows;
        T* oj = out + j * rows;
        T top = zj[0] + (has_bias ? bias[0] : T(0));
        for (long long r = 0; r < rows; ++r) {
            T s = zj[r] + (has_bias ? bias[r] : T(0));
            oj[r] = s;
            top = s > top ? s : top;
        }
        T total = T(0);
        for (long long r = 0; r < rows; ++r) {
            T e = exp(oj[r] - top);
            oj[r] = e;
            total += e;
        }
        for (long long r = 0; r < rows; ++r) oj[r] /= total;
    }
}

// Each column g of delta becomes a ⊙ (g − aᵀg): the softmax Jacobian applied to g.
template <typename T>
__global__ void softmax_backward(const T* a, T* delta, long long rows, long long cols) {
    FOR_EACH(j, cols) {
        const T* aj = a + j * rows;
        T* gj = delta + j * rows;
        T dot = T(0);
        for (long long r = 0; r < rows; ++r) dot += aj[r] * gj[r];
        for (long long r = 0; r < rows; ++r) gj[r] = aj[r] * (gj[r] - dot);
    }
}

// out = x − y; out may be x or y.
template <typename T>
__global__ void subtract(const T* x, const T* y, T* out, long long n) {
    FOR_EACH(i, n) out[i] = x[i] - y[i];
}

// out = x ⊙ y; out may be x or y.
template <typename T>
__global__ void multiply(const T* x, const T* y, T* out, long long n) {
    FOR_EACH(i, n) out[i] = x[i] * y[i];
}

// x = value everywhere.
template <typename T>
__global__ void fill(T* x, T value, long long n) {
    FOR_EACH(i, n) x[i] = value;
}

// partials[block] = this block's share of the cost's sum over all entries, in double:
//   QUADRATIC: Σ (a − y)²;  BINARY_CROSS_ENTROPY: −Σ [y·ln c + (1 − y)·ln(1 − c)];
//   CATEGORICAL_CROSS_ENTROPY: −Σ y·ln c;  with c = a clipped to [eps, 1 − eps].
// The host adds the gridDim.x partials; no atomics, so the sum is the same every run.
template <typename T>
__global__ void cost_partials(const T* y, const T* a, int kind, double eps, double* partials, long long n) {
    __shared__ double cache[THREADS];
    double sum = 0.0;
    FOR_EACH(i, n) {
        double yi = y[i];
        double ai = a[i];
        if (kind == QUADRATIC) {
            double d = ai - yi;
            sum += d * d;
        } else {
            double c = fmin(fmax(ai, eps), 1.0 - eps);
            sum -= yi * log(c);
            if (kind == BINARY_CROSS_ENTROPY) sum -= (1.0 - yi) * log(1.0 - c);
        }
    }
    cache[threadIdx.x] = sum;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) cache[threadIdx.x] += cache[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = cache[0];
}

// --- training beyond plain SGD -------------------------------------------------------------

enum Optimizer { SGD = 0, MOMENTUM = 1, NESTEROV = 2, ADAM = 3, ADAMW = 4 };
// Where each number of a step sits in hyper (nnfs.kinds.Hyper), uploaded in T before each launch;
// MOMENTUM_RATE is Hyper.MOMENTUM (the name MOMENTUM is the optimizer's, above).
enum Hyper { ETA = 0, WEIGHT_DECAY = 1, MOMENTUM_RATE = 2, BETA1 = 3, BETA2 = 4, EPS = 5, STEP_SIZE = 6, ROOT_CORRECTION = 7 };

// One optimizer step, one pass over p, g and the state (nnfs.kinds.OptimizerKind):
//   g' = g + λ·d⊙p (not AdamW), d the decay mask (has_decay = 0: none);
//   SGD: p ← p − η·g';  MOMENTUM: u ← μ·u + g', p ← p − η·u;
//   NESTEROV: u ← μ·u + g', p ← p − η·(g' + μ·u);
//   ADAM: m ← β₁·m + (1 − β₁)·g', v ← β₂·v + (1 − β₂)·g'², p ← p − α·m / (√v / c + ε);
//   ADAMW: p ← p − η·λ·d⊙p first, then ADAM's step with g.
// s0 is u or m, s1 is v; a state the rule does not keep is given as p and not touched.
template <typename T>
__global__ void optimizer_step(T* p, T* g, T* s0, T* s1, const T* decay, int has_decay, int kind, const T* hyper, long long n) {
    const T eta = hyper[ETA], lambda = hyper[WEIGHT_DECAY], mu = hyper[MOMENTUM_RATE];
    const T beta1 = hyper[BETA1], beta2 = hyper[BETA2], eps = hyper[EPS];
    const T alpha = hyper[STEP_SIZE], root = hyper[ROOT_CORRECTION];
    FOR_EACH(i, n) {
        T pe = p[i];
        T ge = g[i];
        const T d = has_decay ? decay[i] : T(0);
        if (kind == ADAMW) pe -= eta * lambda * d * pe;
        else ge += lambda * d * pe;
        if (kind == SGD) {
            pe -= eta * ge;
        } else if (kind == MOMENTUM || kind == NESTEROV) {
            const T u = mu * s0[i] + ge;
            s0[i] = u;
            pe -= eta * (kind == NESTEROV ? ge + mu * u : u);
        } else {
            const T m = beta1 * s0[i] + (T(1) - beta1) * ge;
            const T v = beta2 * s1[i] + (T(1) - beta2) * ge * ge;
            s0[i] = m;
            s1[i] = v;
            pe -= alpha * m / (sqrt(v) / root + eps);
        }
        p[i] = pe;
    }
}

// Dropout's mask from Philox-4x32-10 (nnfs.philox): entry e of the column-major mask takes
// element k = first·rows + e of the stream keyed by (key0, key1) at step, where first and
// step are counter[1] and counter[0] (uploaded before each launch): word k mod 4 of Philox at
// counter (b, b >> 32, step, step >> 32), b = k / 4; 0 when the word is below threshold,
// else scale. One thread per Philox block of four entries.
template <typename T>
__global__ void dropout_mask(T* mask, long long rows, long long n, long long key0, long long key1, long long threshold, T scale, const long long* counter) {
    const unsigned long long step = (unsigned long long)counter[0];
    const unsigned long long start = (unsigned long long)counter[1] * (unsigned long long)rows;
    const unsigned long long blocks = (start + n + 3) / 4 - start / 4;
    FOR_EACH(t, (long long)blocks) {
        const unsigned long long b = start / 4 + t;
        unsigned int c0 = (unsigned int)b, c1 = (unsigned int)(b >> 32);
        unsigned int c2 = (unsigned int)step, c3 = (unsigned int)(step >> 32);
        unsigned int k0 = (unsigned int)key0, k1 = (unsigned int)key1;
        for (int round = 0; round < 10; ++round) {
            if (round) {
                k0 += 0x9E3779B9u;  // the Weyl constants bump the key before every round but the first
                k1 += 0xBB67AE85u;
            }
            const unsigned int hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
            const unsigned int hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
            c0 = hi1 ^ c1 ^ k0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ k1;
            c3 = lo0;
        }
        const unsigned int words[4] = {c0, c1, c2, c3};
        for (int w = 0; w < 4; ++w) {
            const unsigned long long k = 4 * b + w;
            if (k >= start && k < start + n)
                mask[k - start] = words[w] >= (unsigned long long)threshold ? scale : T(0);
        }
    }
}

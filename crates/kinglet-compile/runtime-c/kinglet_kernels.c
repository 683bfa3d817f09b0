/* kinglet kernels for generated C models (C99). Every function is `static inline` so a
 * generated model carries only what it calls and compiles warning-free with -Wall -Werror.
 * Arithmetic is TFLite's int8 specification, bit for bit: int32 accumulation, requantisation
 * by MultiplyByQuantizedMultiplier (double rounding; fully-connected layers: double-precision
 * scale, as TFLite's reference kernel), fused-activation clamp. The 1D convolution, depthwise
 * and fully-connected kernels read widened (int16) activations and packed int16 weights, two multiply-accumulates per SMLAD on cores with the DSP extension
 * (__ARM_FEATURE_DSP) and a portable equivalent elsewhere. */

/* Hot kernels are forced inline where the compiler allows it, so each call site is
 * specialised for its constant shapes (block size, pair count). */
#if defined(__GNUC__)
#define KL_HOT static inline __attribute__((always_inline))
#else
#define KL_HOT static inline
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
static inline int32_t kl_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
#else
static inline int32_t kl_smlad(uint32_t a, uint32_t b, int32_t acc) {
    int32_t lo = (int32_t)(int16_t)(a & 0xffffu) * (int32_t)(int16_t)(b & 0xffffu);
    int32_t hi = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
#endif

/* Two adjacent int16 values as one word, low half first (one LDR on Cortex-M4). */
static inline uint32_t kl_pair(const int16_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* gemmlowp SaturatingRoundingDoublingHighMul. Its sign-dependent nudge followed by a
 * division truncating toward zero equals one floor shift, (a·b + 2^30) >> 31, which needs no
 * 64-bit division (right shifts of negative values are arithmetic on every supported compiler). */
static inline int32_t kl_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t kl_rounding_divide_by_pot(int32_t x, int exponent) {
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t kl_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    int left = shift > 0 ? (int)shift : 0;
    int right = shift > 0 ? 0 : (int)-shift;
    return kl_rounding_divide_by_pot(kl_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

typedef struct {
    const int32_t *multipliers;
    const int32_t *shifts;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} kl_requant;

/* Whether the one-rounding form applies (every shift a right shift of at least one, clamp
 * floor at or above the zero point): then both roundings fold into
 * (acc·m + 2^30 + 2^(30+e)) >> (31+e), exact for every value the clamp lets through. */
static inline int kl_requant_fast(const kl_requant *r, int channels) {
    int c;
    if (r->act_min < r->output_offset) {
        return 0;
    }
    for (c = 0; c < channels; c++) {
        if (r->shifts[c] > -1) {
            return 0;
        }
    }
    return 1;
}

static inline int8_t kl_finish_fast(const kl_requant *r, int32_t acc, int ch) {
    int e = (int)-r->shifts[ch];
    int64_t p = (int64_t)acc * (int64_t)r->multipliers[ch] + ((int64_t)1 << 30) + ((int64_t)1 << (30 + e));
    int32_t v = ((int32_t)(p >> 32) >> (e - 1)) + r->output_offset;
    if (v < r->act_min) {
        v = r->act_min;
    }
    if (v > r->act_max) {
        v = r->act_max;
    }
    return (int8_t)v;
}

static inline int8_t kl_finish(const kl_requant *r, int32_t acc, int ch) {
    int32_t v = kl_mbqm(acc, r->multipliers[ch], r->shifts[ch]) + r->output_offset;
    if (v < r->act_min) {
        v = r->act_min;
    }
    if (v > r->act_max) {
        v = r->act_max;
    }
    return (int8_t)v;
}

/* Fully-connected requantisation as TFLite's reference kernel computes it: round(acc · scale)
 * with the product in double precision, ties away from zero (computed in integers below). Q31
 * fixed point rounds twice and cannot reproduce it. */
typedef struct {
    const double *scales;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} kl_fc_requant;

/* Bits needed for x > 0. */
static inline int kl_bit_len64(uint64_t x) {
#if defined(__GNUC__)
    return 64 - __builtin_clzll(x);
#else
    int n = 0;
    while (x) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* (*lo, *hi) += 2^bit for a 128-bit value in halves (bit < 128, no overflow). */
static inline void kl_add_pow2(uint64_t *lo, uint64_t *hi, int bit) {
    if (bit >= 64) {
        *hi += (uint64_t)1 << (bit - 64);
    } else {
        uint64_t sum = *lo + ((uint64_t)1 << bit);
        *hi += sum < *lo ? 1u : 0u;
        *lo = sum;
    }
}

/* round(acc · scale), the product rounded to double first, ties away from zero, saturated:
 * in integers, as kinglet-m4's requantize_double (which documents the derivation). With
 * scale = S·2^-k and N = |acc|·S, the result is (N + 2^(k-1) + w) >> k, w = 2^(bits(N)-54)
 * when N has more than 53 bits (the double rounding of the product), else 0. */
static inline int32_t kl_requantize_double(int32_t acc, double scale) {
    uint64_t bits;
    uint64_t n = acc < 0 ? (uint64_t)(-(int64_t)acc) : (uint64_t)acc;
    uint64_t magnitude;
    int biased_exp;
    memcpy(&bits, &scale, sizeof bits);
    biased_exp = (int)((bits >> 52) & 0x7ffu);
    if (n == 0 || biased_exp == 0) {
        return 0;
    }
    {
        uint64_t significand = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1 << 52);
        int k = 1075 - biased_exp;
        if (k <= 0) {
            magnitude = UINT64_MAX;
        } else if (k > 126) {
            magnitude = 0;
        } else {
            uint64_t low = n * (significand & 0xffffffffu);
            uint64_t high = n * (significand >> 32);
            uint64_t lo = low + (high << 32);
            uint64_t hi = (high >> 32) + (lo < low ? 1u : 0u);
            int bit_len = hi != 0 ? 64 + kl_bit_len64(hi) : kl_bit_len64(lo);
            kl_add_pow2(&lo, &hi, k - 1);
            if (bit_len >= 54) {
                kl_add_pow2(&lo, &hi, bit_len - 54);
            }
            if (k >= 64) {
                magnitude = hi >> (k - 64);
            } else if ((hi >> k) != 0) {
                magnitude = UINT64_MAX;
            } else {
                magnitude = (lo >> k) | (hi << (64 - k));
            }
        }
    }
    if (acc < 0) {
        return magnitude >= ((uint64_t)1 << 31) ? INT32_MIN : -(int32_t)magnitude;
    }
    return magnitude > (uint64_t)INT32_MAX ? INT32_MAX : (int32_t)magnitude;
}

static inline int8_t kl_finish_fc(const kl_fc_requant *r, int32_t acc, int ch) {
    int64_t v = (int64_t)kl_requantize_double(acc, r->scales[ch]) + r->output_offset;
    if (v < r->act_min) {
        v = r->act_min;
    }
    if (v > r->act_max) {
        v = r->act_max;
    }
    return (int8_t)v;
}

static inline int kl_channel_block(int out_ch) {
    return out_ch % 4 == 0 ? 4 : (out_ch % 2 == 0 ? 2 : 1);
}

/* int8 `input` (len values, in_ch channels last) into `padded` (padded_len values):
 * pad_before positions of zero points, the signal, zero points after. */
static inline void kl_widen_padded(const int8_t *input, int len, int in_ch, int pad_before,
                                   int8_t zero_point, int16_t *padded, int padded_len) {
    int i;
    int head = pad_before * in_ch;
    for (i = 0; i < head; i++) {
        padded[i] = zero_point;
    }
    for (i = 0; i < len; i++) {
        padded[head + i] = input[i];
    }
    for (i = head + len; i < padded_len; i++) {
        padded[i] = zero_point;
    }
}

/* int8 `input` (width × channels, channels last) into channel-major rows of row_len int16:
 * pad_before zero points, the channel's signal, zero points to the end of the row. */
static inline void kl_widen_channel_major(const int8_t *input, int width, int channels,
                                          int pad_before, int8_t zero_point, int row_len,
                                          int16_t *padded) {
    int c;
    int x;
    for (c = 0; c < channels; c++) {
        int16_t *row = padded + c * row_len;
        for (x = 0; x < pad_before; x++) {
            row[x] = zero_point;
        }
        for (x = 0; x < width; x++) {
            row[pad_before + x] = input[x * channels + c];
        }
        for (x = pad_before + width; x < row_len; x++) {
            row[x] = zero_point;
        }
    }
}

/* Value t of weights packed `bits` (8, 4 or 2) bits a value by kinglet-m4's `subbyte`: words
 * of 32/bits values; value u of a word lies in byte {0, 2, 1, 3}[u % 4], bits bits·(u / 4)
 * upwards, two's complement. */
static inline int16_t kl_packed_value(const uint8_t *packed, int t, int bits) {
    static const int byte_of[4] = {0, 2, 1, 3};
    int per_word = 32 / bits;
    int u = t % per_word;
    int field = (packed[4 * (t / per_word) + byte_of[u % 4]] >> (bits * (u / 4))) & ((1 << bits) - 1);
    return (int16_t)(field >= (1 << (bits - 1)) ? field - (1 << bits) : field);
}

/* Bytes of `values` weights packed `bits` bits a value in whole words. */
static inline int kl_packed_bytes(int values, int bits) {
    int per_word = 32 / bits;
    return 4 * ((values + per_word - 1) / per_word);
}

/* acc[j] += window · weights of channel j of a packed block (pair k of channel j at word
 * k·block + j); one loop per block size so the accumulators stay in registers. */
KL_HOT void kl_dot_block(const int16_t *window, const int16_t *weights, int pairs, int block,
                                int32_t *acc) {
    int k;
    if (block == 4) {
        int32_t c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];
        for (k = 0; k < pairs; k++) {
            uint32_t a = kl_pair(window + 2 * k);
            const int16_t *w = weights + 8 * k;
            c0 = kl_smlad(a, kl_pair(w), c0);
            c1 = kl_smlad(a, kl_pair(w + 2), c1);
            c2 = kl_smlad(a, kl_pair(w + 4), c2);
            c3 = kl_smlad(a, kl_pair(w + 6), c3);
        }
        acc[0] = c0;
        acc[1] = c1;
        acc[2] = c2;
        acc[3] = c3;
    } else if (block == 2) {
        int32_t c0 = acc[0], c1 = acc[1];
        for (k = 0; k < pairs; k++) {
            uint32_t a = kl_pair(window + 2 * k);
            const int16_t *w = weights + 4 * k;
            c0 = kl_smlad(a, kl_pair(w), c0);
            c1 = kl_smlad(a, kl_pair(w + 2), c1);
        }
        acc[0] = c0;
        acc[1] = c1;
    } else {
        int32_t c0 = acc[0];
        for (k = 0; k < pairs; k++) {
            c0 = kl_smlad(kl_pair(window + 2 * k), kl_pair(weights + 2 * k), c0);
        }
        acc[0] = c0;
    }
}

/* 1D convolution, any kernel size, stride 1, on a widened padded signal (output x reads the
 * window starting at position x; `width` outputs before pooling); with `pool` a 2-wide
 * stride-2 max pool is fused. `bias` has the input zero point folded in. Weights are either
 * `weights` (widened) or `packed` (`bits` = 8, 4 or 2 bits a value, per block in the order of
 * kl_packed_value), which each block unpacks into `scratch` before its positions run. */
KL_HOT void kl_conv1d(const int16_t *padded, int width, int in_ch, int out_ch, int kernel,
                             int pool, const int16_t *weights, const uint8_t *packed, int bits,
                             int16_t *scratch, const int32_t *bias, const kl_requant *r,
                             int8_t *out) {
    int row = (kernel * in_ch + 1) & ~1;
    int pairs = row / 2;
    int block = kl_channel_block(out_ch);
    int fast = kl_requant_fast(r, out_ch);
    int b;
    int x;
    int j;
    for (b = 0; b < out_ch; b += block) {
        const int16_t *w;
        if (packed) {
            const uint8_t *src = packed + (b / block) * kl_packed_bytes(block * row, bits);
            int i;
            for (i = 0; i < block * row; i++) {
                scratch[i] = kl_packed_value(src, i, bits);
            }
            w = scratch;
        } else {
            w = weights + b * row;
        }
        if (pool) {
            for (x = 0; x + 1 < width; x += 2) {
                int32_t acc0[4] = {0, 0, 0, 0};
                int32_t acc1[4] = {0, 0, 0, 0};
                for (j = 0; j < block; j++) {
                    acc0[j] = bias[b + j];
                    acc1[j] = bias[b + j];
                }
                kl_dot_block(padded + x * in_ch, w, pairs, block, acc0);
                kl_dot_block(padded + (x + 1) * in_ch, w, pairs, block, acc1);
                for (j = 0; j < block; j++) {
                    int8_t v;
                    if (fast) {
                        /* Monotonic: one requantisation of the larger accumulator. */
                        v = kl_finish_fast(r, acc0[j] > acc1[j] ? acc0[j] : acc1[j], b + j);
                    } else {
                        int8_t v0 = kl_finish(r, acc0[j], b + j);
                        int8_t v1 = kl_finish(r, acc1[j], b + j);
                        v = v0 > v1 ? v0 : v1;
                    }
                    out[(x / 2) * out_ch + b + j] = v;
                }
            }
        } else {
            for (x = 0; x < width; x++) {
                int32_t acc[4] = {0, 0, 0, 0};
                for (j = 0; j < block; j++) {
                    acc[j] = bias[b + j];
                }
                kl_dot_block(padded + x * in_ch, w, pairs, block, acc);
                for (j = 0; j < block; j++) {
                    out[x * out_ch + b + j] = fast ? kl_finish_fast(r, acc[j], b + j) : kl_finish(r, acc[j], b + j);
                }
            }
        }
    }
}

/* 1D depthwise convolution, multiplier 1, stride 1, on channel-major rows of row_len values:
 * output x of channel c = taps of channel c (pairs, zero-padded) · row c from position x.
 * Taps are `weights` (widened) or `packed` (`bits` bits a value, each channel in whole words),
 * unpacked once per channel. */
KL_HOT void kl_depthwise1d(const int16_t *padded, int width, int channels, int kernel,
                                  int row_len, const int16_t *weights, const uint8_t *packed,
                                  int bits, const int32_t *bias, const kl_requant *r,
                                  int8_t *out) {
    int pairs = (kernel + 1) / 2;
    int fast = kl_requant_fast(r, channels);
    int c;
    int x;
    int p;
    int16_t taps[16];
    for (c = 0; c < channels; c++) {
        const int16_t *row = padded + c * row_len;
        const int16_t *w;
        if (packed) {
            const uint8_t *src = packed + c * kl_packed_bytes(2 * pairs, bits);
            for (p = 0; p < 2 * pairs; p++) {
                taps[p] = kl_packed_value(src, p, bits);
            }
            w = taps;
        } else {
            w = weights + 2 * pairs * c;
        }
        for (x = 0; x < width; x++) {
            int32_t acc = bias[c];
            for (p = 0; p < pairs; p++) {
                acc = kl_smlad(kl_pair(row + x + 2 * p), kl_pair(w + 2 * p), acc);
            }
            out[x * channels + c] = fast ? kl_finish_fast(r, acc, c) : kl_finish(r, acc, c);
        }
    }
}

/* Fully connected on a widened vector (in_len values, one more zero point when in_len is
 * odd), with `weights` (widened, packed) or `packed` (`bits` bits a value per block in the
 * order of kl_packed_value: pair i of a block is values 2i and 2i + 1), read in place. */
static inline void kl_fully_connected_q15(const int16_t *vec, int in_len, int out_len,
                                          const int16_t *weights, const uint8_t *packed,
                                          int bits, const int32_t *bias,
                                          const kl_fc_requant *r, int8_t *out) {
    int row = (in_len + 1) & ~1;
    int block = kl_channel_block(out_len);
    int b;
    int j;
    int k;
    for (b = 0; b < out_len; b += block) {
        int32_t acc[4] = {0, 0, 0, 0};
        for (j = 0; j < block; j++) {
            acc[j] = bias[b + j];
        }
        if (packed) {
            const uint8_t *src = packed + (b / block) * kl_packed_bytes(block * row, bits);
            for (k = 0; k < row / 2; k++) {
                for (j = 0; j < block; j++) {
                    int i = k * block + j;
                    uint32_t w = (uint16_t)kl_packed_value(src, 2 * i, bits) |
                                 ((uint32_t)(uint16_t)kl_packed_value(src, 2 * i + 1, bits) << 16);
                    acc[j] = kl_smlad(kl_pair(vec + 2 * k), w, acc[j]);
                }
            }
        } else {
            kl_dot_block(vec, weights + b * row, row / 2, block, acc);
        }
        for (j = 0; j < block; j++) {
            out[b + j] = kl_finish_fc(r, acc[j], b + j);
        }
    }
}

/* Reference Conv2D (NHWC input, OHWI filter), TFLite reference_integer_ops::ConvPerChannel.
 * dims: in n,h,w,c; filter o,kh,kw,c; out n,h,w,o; geometry: stride h,w, dilation h,w, pad top,left. */
static inline void kl_conv2d_i8(const int8_t *input, const int *in_d, const int8_t *filter,
                                const int *f_d, const int32_t *bias, const int *out_d,
                                const int *g, int32_t input_offset, const kl_requant *r,
                                int8_t *out) {
    int n, oy, ox, o, ky, kx, c;
    for (n = 0; n < out_d[0]; n++) {
        for (oy = 0; oy < out_d[1]; oy++) {
            for (ox = 0; ox < out_d[2]; ox++) {
                for (o = 0; o < out_d[3]; o++) {
                    int32_t acc = 0;
                    for (ky = 0; ky < f_d[1]; ky++) {
                        int iy = oy * g[0] + ky * g[2] - g[4];
                        if (iy < 0 || iy >= in_d[1]) {
                            continue;
                        }
                        for (kx = 0; kx < f_d[2]; kx++) {
                            int ix = ox * g[1] + kx * g[3] - g[5];
                            if (ix < 0 || ix >= in_d[2]) {
                                continue;
                            }
                            for (c = 0; c < in_d[3]; c++) {
                                int32_t xv = input[((n * in_d[1] + iy) * in_d[2] + ix) * in_d[3] + c];
                                int32_t wv = filter[((o * f_d[1] + ky) * f_d[2] + kx) * f_d[3] + c];
                                acc = (int32_t)((uint32_t)acc + (uint32_t)((xv + input_offset) * wv));
                            }
                        }
                    }
                    if (bias) {
                        acc = (int32_t)((uint32_t)acc + (uint32_t)bias[o]);
                    }
                    out[((n * out_d[1] + oy) * out_d[2] + ox) * out_d[3] + o] = kl_finish(r, acc, o);
                }
            }
        }
    }
}

/* Reference MaxPool2D; window: filter h,w, stride h,w, pad top,left. */
static inline void kl_max_pool2d_i8(const int8_t *input, const int *in_d, const int *out_d,
                                    const int *win, int32_t act_min, int32_t act_max, int8_t *out) {
    int n, oy, ox, c, ky, kx;
    for (n = 0; n < out_d[0]; n++) {
        for (oy = 0; oy < out_d[1]; oy++) {
            for (ox = 0; ox < out_d[2]; ox++) {
                for (c = 0; c < out_d[3]; c++) {
                    int32_t m = -128;
                    for (ky = 0; ky < win[0]; ky++) {
                        int iy = oy * win[2] + ky - win[4];
                        if (iy < 0 || iy >= in_d[1]) {
                            continue;
                        }
                        for (kx = 0; kx < win[1]; kx++) {
                            int ix = ox * win[3] + kx - win[5];
                            int32_t v;
                            if (ix < 0 || ix >= in_d[2]) {
                                continue;
                            }
                            v = input[((n * in_d[1] + iy) * in_d[2] + ix) * in_d[3] + c];
                            if (v > m) {
                                m = v;
                            }
                        }
                    }
                    if (m < act_min) {
                        m = act_min;
                    }
                    if (m > act_max) {
                        m = act_max;
                    }
                    out[((n * out_d[1] + oy) * out_d[2] + ox) * out_d[3] + c] = (int8_t)m;
                }
            }
        }
    }
}

/* Reference FullyConnected, weights [out][in]. */
static inline void kl_fully_connected_i8(const int8_t *input, int batches, int in_len, int out_len,
                                         const int8_t *weights, const int32_t *bias,
                                         int32_t input_offset, const kl_fc_requant *r, int8_t *out) {
    int b, o, i;
    for (b = 0; b < batches; b++) {
        for (o = 0; o < out_len; o++) {
            int32_t acc = 0;
            for (i = 0; i < in_len; i++) {
                int32_t xv = input[b * in_len + i];
                acc = (int32_t)((uint32_t)acc + (uint32_t)((xv + input_offset) * weights[o * in_len + i]));
            }
            if (bias) {
                acc = (int32_t)((uint32_t)acc + (uint32_t)bias[o]);
            }
            out[b * out_len + o] = kl_finish_fc(r, acc, o);
        }
    }
}

/* acc plus (x[col] + input_offset) * w over one bitmask row (row_bytes mask bytes at m, bit
 * i % 8 of byte i / 8 set when column i is non-zero); *v walks past the row's values. */
static inline int32_t kl_sparse_row_bitmask(int32_t acc, const int8_t *x, const uint8_t *m,
                                            int row_bytes, const int8_t **v,
                                            int32_t input_offset) {
    int j;
    for (j = 0; j < row_bytes; j++) {
        unsigned bits = m[j];
        while (bits) {
            int col = j * 8 + __builtin_ctz(bits);
            bits &= bits - 1;
            acc = (int32_t)((uint32_t)acc + (uint32_t)((x[col] + input_offset) * *(*v)++));
        }
    }
    return acc;
}

/* acc plus (x[col] + input_offset) * values[n] over one delta row of len entries, each
 * advancing col (from 0) by deltas[n]. */
static inline int32_t kl_sparse_row_deltas(int32_t acc, const int8_t *x, int len,
                                           const uint8_t *deltas, const int8_t *values,
                                           int32_t input_offset) {
    int n, col = 0;
    for (n = 0; n < len; n++) {
        col += deltas[n];
        acc = (int32_t)((uint32_t)acc + (uint32_t)((x[col] + input_offset) * values[n]));
    }
    return acc;
}

/* Fully connected over pruned weights (kinglet-micro sparse_fully_connected_i8): only the
 * non-zero weights are stored. Bitmask: per output row (in_len + 7) / 8 mask bytes, bit i % 8
 * of byte i / 8 set when column i is non-zero; values row after row. Integer sums are
 * order-independent, so the results equal kl_fully_connected_i8 on the dense weights. */
static inline void kl_sparse_fc_bitmask_i8(const int8_t *input, int batches, int in_len,
                                           int out_len, const uint8_t *masks,
                                           const int8_t *values, const int32_t *bias,
                                           int32_t input_offset, const kl_fc_requant *r,
                                           int8_t *out) {
    int b, o;
    int row_bytes = (in_len + 7) / 8;
    for (b = 0; b < batches; b++) {
        const int8_t *x = input + b * in_len;
        const int8_t *v = values;
        for (o = 0; o < out_len; o++) {
            int32_t acc = kl_sparse_row_bitmask(bias ? bias[o] : 0, x, masks + o * row_bytes,
                                                row_bytes, &v, input_offset);
            out[b * out_len + o] = kl_finish_fc(r, acc, o);
        }
    }
}

/* Deltas: row o has row_lens[o] entries; each advances the column by deltas[k] (from column 0
 * at the row start) and weighs it by values[k] (bridging entries of gaps > 255 weigh 0). */
static inline void kl_sparse_fc_deltas_i8(const int8_t *input, int batches, int in_len,
                                          int out_len, const uint16_t *row_lens,
                                          const uint8_t *deltas, const int8_t *values,
                                          const int32_t *bias, int32_t input_offset,
                                          const kl_fc_requant *r, int8_t *out) {
    int b, o, k;
    for (b = 0; b < batches; b++) {
        const int8_t *x = input + b * in_len;
        k = 0;
        for (o = 0; o < out_len; o++) {
            int32_t acc = kl_sparse_row_deltas(bias ? bias[o] : 0, x, row_lens[o], deltas + k,
                                               values + k, input_offset);
            k += row_lens[o];
            out[b * out_len + o] = kl_finish_fc(r, acc, o);
        }
    }
}

/* Conv2D over pruned filters (kinglet-micro sparse_conv2d_i8): each output channel's
 * kh*kw*in_c taps are one compressed row (masks != NULL: bitmask rows; else row_lens/deltas).
 * Every output pixel gathers its window into patch (outside the image: the input zero point,
 * which adds nothing) and runs the rows over it. dims and g as for kl_conv2d_i8. */
static inline void kl_sparse_conv2d_i8(const int8_t *input, const int *in_d, const int *f_d,
                                       const int *out_d, const int *g, const uint8_t *masks,
                                       const uint16_t *row_lens, const uint8_t *deltas,
                                       const int8_t *values, const int32_t *bias,
                                       int32_t input_offset, const kl_requant *r, int8_t *patch,
                                       int8_t *out) {
    int n, oy, ox, o, ky, kx, c;
    int ic = f_d[3];
    int taps = f_d[1] * f_d[2] * ic;
    int row_bytes = (taps + 7) / 8;
    for (n = 0; n < out_d[0]; n++) {
        const int8_t *image = input + n * in_d[1] * in_d[2] * in_d[3];
        for (oy = 0; oy < out_d[1]; oy++) {
            for (ox = 0; ox < out_d[2]; ox++) {
                int8_t *p = patch;
                const int8_t *v = values;
                int k = 0;
                for (ky = 0; ky < f_d[1]; ky++) {
                    int iy = oy * g[0] + ky * g[2] - g[4];
                    for (kx = 0; kx < f_d[2]; kx++) {
                        int ix = ox * g[1] + kx * g[3] - g[5];
                        int inside = iy >= 0 && iy < in_d[1] && ix >= 0 && ix < in_d[2];
                        for (c = 0; c < ic; c++) {
                            *p++ = inside ? image[(iy * in_d[2] + ix) * ic + c]
                                          : (int8_t)(-input_offset);
                        }
                    }
                }
                for (o = 0; o < out_d[3]; o++) {
                    int32_t acc = bias ? bias[o] : 0;
                    if (masks) {
                        acc = kl_sparse_row_bitmask(acc, patch, masks + o * row_bytes, row_bytes,
                                                    &v, input_offset);
                    } else {
                        acc = kl_sparse_row_deltas(acc, patch, row_lens[o], deltas + k, values + k,
                                                   input_offset);
                        k += row_lens[o];
                    }
                    *out++ = kl_finish(r, acc, o);
                }
            }
        }
    }
}

/* Reference DepthwiseConv2D (TFLite DepthwiseConvPerChannel); filter [1, kh, kw, in_c·mult],
 * output channel ic·mult + m reads input channel ic; g as for kl_conv2d_i8. */
static inline void kl_depthwise_conv2d_i8(const int8_t *input, const int *in_d, const int8_t *filter,
                                          const int *f_d, const int32_t *bias, const int *out_d,
                                          const int *g, int mult, int32_t input_offset,
                                          const kl_requant *r, int8_t *out) {
    int n, oy, ox, o, ky, kx;
    for (n = 0; n < out_d[0]; n++) {
        for (oy = 0; oy < out_d[1]; oy++) {
            for (ox = 0; ox < out_d[2]; ox++) {
                for (o = 0; o < out_d[3]; o++) {
                    int ic = o / mult;
                    int32_t acc = 0;
                    for (ky = 0; ky < f_d[1]; ky++) {
                        int iy = oy * g[0] + ky * g[2] - g[4];
                        if (iy < 0 || iy >= in_d[1]) {
                            continue;
                        }
                        for (kx = 0; kx < f_d[2]; kx++) {
                            int ix = ox * g[1] + kx * g[3] - g[5];
                            int32_t xv, wv;
                            if (ix < 0 || ix >= in_d[2]) {
                                continue;
                            }
                            xv = input[((n * in_d[1] + iy) * in_d[2] + ix) * in_d[3] + ic];
                            wv = filter[(ky * f_d[2] + kx) * f_d[3] + o];
                            acc = (int32_t)((uint32_t)acc + (uint32_t)((xv + input_offset) * wv));
                        }
                    }
                    if (bias) {
                        acc = (int32_t)((uint32_t)acc + (uint32_t)bias[o]);
                    }
                    out[((n * out_d[1] + oy) * out_d[2] + ox) * out_d[3] + o] = kl_finish(r, acc, o);
                }
            }
        }
    }
}

/* Spatial mean (TFLite reference QuantizedMeanOrSum) of [outer, count, channels]: the
 * multiplier and shift already absorb 1/count (see kinglet-micro mean_hw_i8). */
static inline void kl_mean_i8(const int8_t *input, int outer, int count, int channels,
                              int32_t input_zero_point, int32_t output_zero_point,
                              int32_t multiplier, int32_t shift, int8_t *out) {
    int n, i, c;
    int32_t zp_sum = (int32_t)((int64_t)input_zero_point * count);
    for (n = 0; n < outer; n++) {
        for (c = 0; c < channels; c++) {
            int32_t sum = 0;
            int32_t v;
            for (i = 0; i < count; i++) {
                sum = (int32_t)((uint32_t)sum + (uint32_t)input[(n * count + i) * channels + c]);
            }
            v = kl_mbqm((int32_t)((uint32_t)sum - (uint32_t)zp_sum), multiplier, shift);
            v = v + output_zero_point;
            if (v < -128) {
                v = -128;
            }
            if (v > 127) {
                v = 127;
            }
            out[n * channels + c] = (int8_t)v;
        }
    }
}

/* ---- TFLite's 16x8 scheme (a16w8): int16 activations (symmetric, zero point 0), int8
 * weights, int64 biases; ports of kinglet-micro's s16 kernels, which match TFLite's reference
 * int16 kernels bit for bit. ---- */

typedef struct {
    const int32_t *multipliers;
    const int32_t *shifts;
    int32_t act_min;
    int32_t act_max;
} kl_requant16;

/* TFLite's 64-bit MultiplyByQuantizedMultiplier: the Q31 multiplier rounded to Q15, then
 * x·m15 shifted right by 15 − shift rounding half up (shift in -31..7). Wraps where TFLite's
 * would overflow, as kinglet-micro does; the final narrowing keeps the low 32 bits. */
static inline int32_t kl_mbqm64(int64_t x, int32_t multiplier, int32_t shift) {
    int32_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    int total_shift = 15 - (int)shift;
    uint64_t rounded = (uint64_t)x * (uint64_t)(int64_t)reduced + ((uint64_t)1 << (total_shift - 1));
    return (int32_t)(uint32_t)(uint64_t)((int64_t)rounded >> total_shift);
}

static inline int16_t kl_clamp16(int32_t v, int32_t lo, int32_t hi) {
    if (v < lo) {
        v = lo;
    }
    if (v > hi) {
        v = hi;
    }
    return (int16_t)v;
}

/* Bias, requantisation and clamp of one int64 accumulator of output channel ch. */
static inline int16_t kl_finish16(const kl_requant16 *r, int64_t acc, const int64_t *bias, int ch) {
    if (bias) {
        acc = (int64_t)((uint64_t)acc + (uint64_t)bias[ch]);
    }
    return kl_clamp16(kl_mbqm64(acc, r->multipliers[ch], r->shifts[ch]), r->act_min, r->act_max);
}

/* int16 × int8 convolution (NHWC input, OHWI filter) and depthwise convolution (filter
 * [1, kh, kw, in_c·mult], output channel ic·mult + m reads input channel ic) in one loop:
 * mult 0 selects the plain convolution. int64 sums over in-bounds taps; g as for kl_conv2d_i8. */
static inline void kl_conv_s16(const int16_t *input, const int *in_d, const int8_t *filter,
                               const int *f_d, const int64_t *bias, const int *out_d,
                               const int *g, int mult, const kl_requant16 *r, int16_t *out) {
    int n, oy, ox, o, ky, kx, c;
    int depth = mult > 0 ? 1 : in_d[3];
    for (n = 0; n < out_d[0]; n++) {
        for (oy = 0; oy < out_d[1]; oy++) {
            for (ox = 0; ox < out_d[2]; ox++) {
                for (o = 0; o < out_d[3]; o++) {
                    int64_t acc = 0;
                    for (ky = 0; ky < f_d[1]; ky++) {
                        int iy = oy * g[0] + ky * g[2] - g[4];
                        if (iy < 0 || iy >= in_d[1]) {
                            continue;
                        }
                        for (kx = 0; kx < f_d[2]; kx++) {
                            int ix = ox * g[1] + kx * g[3] - g[5];
                            const int16_t *x;
                            const int8_t *w;
                            if (ix < 0 || ix >= in_d[2]) {
                                continue;
                            }
                            x = input + ((n * in_d[1] + iy) * in_d[2] + ix) * in_d[3];
                            if (mult > 0) {
                                x += o / mult;
                                w = filter + (ky * f_d[2] + kx) * f_d[3] + o;
                            } else {
                                w = filter + ((o * f_d[1] + ky) * f_d[2] + kx) * f_d[3];
                            }
                            for (c = 0; c < depth; c++) {
                                acc = (int64_t)((uint64_t)acc + (uint64_t)(int64_t)((int32_t)w[c] * (int32_t)x[c]));
                            }
                        }
                    }
                    out[((n * out_d[1] + oy) * out_d[2] + ox) * out_d[3] + o] = kl_finish16(r, acc, bias, o);
                }
            }
        }
    }
}

static inline void kl_conv2d_s16(const int16_t *input, const int *in_d, const int8_t *filter,
                                 const int *f_d, const int64_t *bias, const int *out_d,
                                 const int *g, const kl_requant16 *r, int16_t *out) {
    kl_conv_s16(input, in_d, filter, f_d, bias, out_d, g, 0, r, out);
}

static inline void kl_depthwise_conv2d_s16(const int16_t *input, const int *in_d, const int8_t *filter,
                                           const int *f_d, const int64_t *bias, const int *out_d,
                                           const int *g, int mult, const kl_requant16 *r, int16_t *out) {
    kl_conv_s16(input, in_d, filter, f_d, bias, out_d, g, mult, r, out);
}

/* kinglet-micro round_f64: half away from zero, exact (x − trunc(x) is representable). */
static inline double kl_round_half_away(double x) {
    double t, frac;
    if (x != x || x >= 4503599627370496.0 || x <= -4503599627370496.0) {
        return x;
    }
    t = (double)(int64_t)x;
    frac = x - t;
    if (frac >= 0.5) {
        return t + 1.0;
    }
    if (frac <= -0.5) {
        return t - 1.0;
    }
    return t;
}

/* int16 × int8 fully connected, weights [out][in], requantised as TFLite's reference kernel:
 * round(acc · scale) in double precision, saturated to int32 (as Rust's `as` does), clamped. */
static inline void kl_fully_connected_s16(const int16_t *input, int batches, int in_len, int out_len,
                                          const int8_t *weights, const int64_t *bias,
                                          const double *scales, int32_t act_min, int32_t act_max,
                                          int16_t *out) {
    int b, o, i;
    for (b = 0; b < batches; b++) {
        for (o = 0; o < out_len; o++) {
            int64_t acc = 0;
            double v;
            int32_t q;
            for (i = 0; i < in_len; i++) {
                acc = (int64_t)((uint64_t)acc + (uint64_t)(int64_t)((int32_t)weights[o * in_len + i] * (int32_t)input[b * in_len + i]));
            }
            if (bias) {
                acc = (int64_t)((uint64_t)acc + (uint64_t)bias[o]);
            }
            v = kl_round_half_away((double)acc * scales[o]);
            if (v != v) {
                q = 0;
            } else if (v >= 2147483647.0) {
                q = INT32_MAX;
            } else if (v <= -2147483648.0) {
                q = INT32_MIN;
            } else {
                q = (int32_t)v;
            }
            out[b * out_len + o] = kl_clamp16(q, act_min, act_max);
        }
    }
}

/* int16 max (average = 0) or average pool over in-bounds taps; window: filter h,w, stride
 * h,w, pad top,left. A max over no taps stays at -32768; the average rounds half away from
 * zero (the lowering refuses windows entirely in padding). */
static inline void kl_pool2d_s16(const int16_t *input, const int *in_d, const int *out_d,
                                 const int *win, int average, int32_t act_min, int32_t act_max,
                                 int16_t *out) {
    int n, oy, ox, c, ky, kx;
    for (n = 0; n < out_d[0]; n++) {
        for (oy = 0; oy < out_d[1]; oy++) {
            for (ox = 0; ox < out_d[2]; ox++) {
                for (c = 0; c < out_d[3]; c++) {
                    int32_t m = -32768;
                    int32_t sum = 0;
                    int32_t count = 0;
                    for (ky = 0; ky < win[0]; ky++) {
                        int iy = oy * win[2] + ky - win[4];
                        if (iy < 0 || iy >= in_d[1]) {
                            continue;
                        }
                        for (kx = 0; kx < win[1]; kx++) {
                            int ix = ox * win[3] + kx - win[5];
                            int32_t v;
                            if (ix < 0 || ix >= in_d[2]) {
                                continue;
                            }
                            v = input[((n * in_d[1] + iy) * in_d[2] + ix) * in_d[3] + c];
                            m = v > m ? v : m;
                            sum = (int32_t)((uint32_t)sum + (uint32_t)v);
                            count++;
                        }
                    }
                    if (average && count > 0) {
                        m = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    }
                    out[((n * out_d[1] + oy) * out_d[2] + ox) * out_d[3] + c] = kl_clamp16(m, act_min, act_max);
                }
            }
        }
    }
}

/* int16 mean of [outer, count, channels] over count; multiplier and shift absorb 1/count
 * (see kinglet-micro mean_q8). Zero points are 0 in this scheme. */
static inline void kl_mean_s16(const int16_t *input, int outer, int count, int channels,
                               int32_t multiplier, int32_t shift, int16_t *out) {
    int n, i, c;
    for (n = 0; n < outer; n++) {
        for (c = 0; c < channels; c++) {
            int32_t sum = 0;
            for (i = 0; i < count; i++) {
                sum = (int32_t)((uint32_t)sum + (uint32_t)input[(n * count + i) * channels + c]);
            }
            out[n * channels + c] = kl_clamp16(kl_mbqm(sum, multiplier, shift), -32768, 32767);
        }
    }
}

/* TFLite's lut_lookup_with_interpolation for int16 input (513-entry tables). */
static inline int16_t kl_lut16(int16_t value, const int16_t *lut) {
    int32_t index = 256 + ((int32_t)value >> 7);
    int32_t offset = (int32_t)value & 0x7f;
    int32_t base = lut[index];
    int32_t slope = (int32_t)lut[index + 1] - base;
    return (int16_t)(base + ((slope * offset + 64) >> 7));
}

/* Leading zero bits of a 32-bit value (32 for 0). */
static inline int kl_clz32(uint32_t x) {
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

/* TFLite reference SoftmaxInt16 over rows of depth values (output scale 1/32768), with the
 * tables and input rescaling the compiler precomputed (kinglet-micro SoftmaxS16). The lowering
 * bounds depth so that the row sum, at least 32767, keeps headroom in int32. */
static inline void kl_softmax_s16(const int16_t *input, int rows, int depth, const int16_t *exp_lut,
                                  const int16_t *recip_lut, int32_t input_multiplier,
                                  int32_t input_left_shift, int16_t *out) {
    int row, i;
    for (row = 0; row < rows; row++) {
        const int16_t *x = input + row * depth;
        int16_t *y = out + row * depth;
        int16_t max = -32768;
        uint32_t sum = 0;
        int headroom_plus_one, right_shift;
        int64_t shifted, reciprocal, round;
        int32_t sym_shifted;
        for (i = 0; i < depth; i++) {
            max = x[i] > max ? x[i] : max;
        }
        for (i = 0; i < depth; i++) {
            int32_t scaled = kl_mbqm((int32_t)x[i] - (int32_t)max, input_multiplier, input_left_shift);
            int64_t sym = (int64_t)scaled + 32767;
            y[i] = kl_lut16(sym < -32768 ? -32768 : sym > 32767 ? 32767 : (int16_t)sym, exp_lut);
            sum += (uint32_t)(int32_t)y[i];
        }
        headroom_plus_one = kl_clz32(sum);
        shifted = (((int64_t)sum << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
        sym_shifted = (int32_t)((uint32_t)(int32_t)shifted - (uint32_t)((1 << 15) + (1 << 16)));
        reciprocal = kl_lut16(kl_clamp16(sym_shifted, -32768, 32767), recip_lut);
        right_shift = 31 - headroom_plus_one;
        round = right_shift > 0 ? (int64_t)1 << (right_shift - 1) : 0;
        for (i = 0; i < depth; i++) {
            int64_t r = ((int64_t)y[i] * reciprocal + round) >> right_shift;
            y[i] = kl_clamp16((int32_t)r, 0, 32767);
        }
    }
}

/* snnbalance's CPU engine: an event-driven integrate-and-fire network (see native.py for the design).

   Compiled once per machine by snnbalance.simulate.native with -O3 -ffp-contract=off -fno-fast-math
   (no fused multiply-adds or reassociation: float32 sums are evaluated as written), plus
   -march=native, -mcpu=native or no arch flag, whichever builds. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16iu __attribute__((vector_size(64), aligned(4)));

enum { DENSE = 0, CONV = 1, POOL = 2, CONV_GATHER = 3, MAXPOOL = 4, ADD = 5, CONCAT = 6 };

/* One node of the network, in topological order. Every node reads buffers by index: 0 is the
   input, l + 1 is node l's output (a spike bitmap, or a current buffer for synaptic nodes). */
typedef struct {
    int64_t kind, n_in, n_out, n_pad, src_nw;
    int64_t ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, ph, pw;
    int64_t tot_off;
    const float *w, *bias, *table;
    const int32_t *spos, *sch, *fp_off, *fp_out, *fp_w, *gp_off, *gp_s, *gp_w;
    double thr, pool_mul;
    int64_t src;             /* buffer read by DENSE, CONV, POOL, CONV_GATHER, MAXPOOL */
    int64_t synaptic;        /* 1: no neurons; writes its current (bias included) for ADD nodes */
    int64_t const_off;       /* >= 0: reads the constant input current at this offset of i_const */
    int64_t n_terms;         /* ADD, CONCAT: inputs */
    const int64_t *term_src; /* their buffers */
    const int64_t *term_cur; /* ADD: 1 when the input is a current buffer, 0 when spikes */
    const float *term_scale; /* ADD: per-input factor (float32, as the reference multiplies) */
    const int64_t *cat_off;  /* CONCAT: per input, offset of its part of cat_map */
    const int32_t *cat_map;  /* CONCAT: output index of each input neuron */
    double v0;               /* initial potential of every neuron, a float32 value (padding neurons get
                                it too: v_init < 1 keeps it below the threshold, so they never fire) */
} Layer;

typedef struct {
    int64_t n_layers, steps, K, reset_zero, refr_steps, current, n_classes, n_samples, n_input;
    const Layer *layers;
    const int64_t *act_off;
    const uint32_t *keys;
    const int64_t *thr;
    const int32_t *act_idx;
    const float *i_const;    /* per sample: const_stride floats; each input reader's at its const_off */
    const int64_t *labels;
    int32_t *out_counts;
    int64_t *next;
    const int64_t *cancel;  /* set non-zero by the caller to stop: polled once per chunk of K steps */
    int64_t const_stride;
    int64_t membrane;        /* read-out: 1 = the output node is synaptic and its current is summed into
                                out_pot (the prediction is its argmax); 0 = output spike counts */
    float *out_pot;          /* membrane read-out: per sample, n_classes accumulated potentials */
} Net;

static inline uint32_t fmix32(uint32_t h) {
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    return h;
}

static inline uint32_t mask16(v16i m) {
#if defined(__AVX512F__)
    return (uint32_t)_mm512_cmplt_epi32_mask((__m512i)m, _mm512_setzero_si512());
#elif defined(__AVX2__)
    __m256i a, b;
    memcpy(&a, &m, 32); memcpy(&b, (const char *)&m + 32, 32);
    return (uint32_t)_mm256_movemask_ps((__m256)a) | ((uint32_t)_mm256_movemask_ps((__m256)b) << 8);
#else
    uint32_t r = 0;
    for (int i = 0; i < 16; i++) r |= (uint32_t)(m[i] & 1) << i;
    return r;
#endif
}

/* One IF step for 16 neurons; returns their spikes as a 16-bit mask. Same operations, in the
   same order, as numpy_ref.if_step. */
static inline __attribute__((always_inline)) v16i
if16(v16 *v, v16i *r, v16 cur, float thr, int zero, int refr_on, int32_t rsteps) {
    v16 thrv = (v16){0} + thr;
    v16i blocked = (v16i){0};
    if (refr_on) {
        blocked = *r > 0;
        cur = (v16)((v16i)cur & ~blocked);
        *r += blocked;
    }
    v16 x = *v + cur;
    v16i m = x >= thrv;
    if (refr_on) {
        m &= ~blocked;
        *r = (*r & ~m) | (((v16i){0} + rsteps) & m);
    }
    if (zero) x = (v16)((v16i)x & ~m);
    else x = x - (v16)((v16i)thrv & m);
    *v = x;
    return m;
}

static inline __attribute__((always_inline)) void
dense_tile(const int NV, const Layer *ly, int64_t tile0, int64_t kk, const int32_t *list,
           const int64_t *off, float *Vb, int32_t *Rb, int32_t *Cb, uint64_t *out, int64_t out_nw,
           int zero, int refr_on, int32_t rsteps) {
    v16 V[8], bias[8];
    v16i R[8], C[8];
    const int64_t n_pad = ly->n_pad;
    const float thr = (float)ly->thr;
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) {
        V[j] = *(const v16 *)(Vb + tile0 + 16 * j);
        C[j] = *(const v16i *)(Cb + tile0 + 16 * j);
        R[j] = refr_on ? *(const v16i *)(Rb + tile0 + 16 * j) : (v16i){0};
        bias[j] = ly->bias ? *(const v16u *)(ly->bias + tile0 + 16 * j) : (v16){0};
    }
    for (int64_t k = 0; k < kk; k++) {
        v16 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) acc[j] = (v16){0};
        for (int64_t p = off[k]; p < off[k + 1]; p++) {
            const float *wr = ly->w + (int64_t)list[p] * n_pad + tile0;
#pragma GCC unroll 8
            for (int j = 0; j < NV; j++) acc[j] += *(const v16u *)(wr + 16 * j);
        }
        uint64_t *orow = out + k * out_nw;
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) {
            v16 cur = ly->bias ? acc[j] + bias[j] : acc[j];
            v16i m = if16(&V[j], &R[j], cur, thr, zero, refr_on, rsteps);
            C[j] -= m;
            int64_t n0 = tile0 + 16 * j;
            orow[n0 >> 6] |= (uint64_t)mask16(m) << (n0 & 63);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) {
        *(v16 *)(Vb + tile0 + 16 * j) = V[j];
        *(v16i *)(Cb + tile0 + 16 * j) = C[j];
        if (refr_on) *(v16i *)(Rb + tile0 + 16 * j) = R[j];
    }
}

__attribute__((noinline)) static void dense_layer(const Layer *ly, int64_t kk, const uint64_t *src, int32_t *list,
                        int64_t *off, float *Vb, int32_t *Rb, int32_t *Cb, uint64_t *out, int64_t out_nw,
                        int zero, int refr_on, int32_t rsteps) {
    int64_t p = 0;
    for (int64_t k = 0; k < kk; k++) {
        off[k] = p;
        const uint64_t *row = src + k * ly->src_nw;
        for (int64_t wd = 0; wd < ly->src_nw; wd++) {
            uint64_t word = row[wd];
            while (word) {
                list[p++] = (int32_t)(wd * 64 + __builtin_ctzll(word));
                word &= word - 1;
            }
        }
    }
    off[kk] = p;
    for (int64_t tile0 = 0; tile0 < ly->n_pad; tile0 += 128) {
        int64_t nv = (ly->n_pad - tile0) / 16;
        switch (nv > 8 ? 8 : nv) {
#define CASE(n) case n: dense_tile(n, ly, tile0, kk, list, off, Vb, Rb, Cb, out, out_nw, zero, refr_on, rsteps); break;
            CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
        }
    }
}

/* Conv reading a spiking layer (channels padded to 16): for each output position, list the weight
   rows of the spikes in its window (position by position, channel by channel: the order in which
   the scatter would add them), then sum them in registers and fire. The list is built without
   branches (AVX-512 compress where available): a loop over each 16-channel mask mispredicts. */
static inline int64_t window_list(const Layer *ly, int64_t p, const uint64_t *row, int32_t *offs) {
    const int64_t cp16 = ly->ic / 16;
    const int32_t ocp = (int32_t)ly->oc;
    const int32_t *gp_s = ly->gp_s, *gp_w = ly->gp_w;
    const int32_t e0 = ly->gp_off[p], e1 = ly->gp_off[p + 1];
    /* channels are padded to 16 and bitmaps are little-endian: 16 channels = one uint16 */
    const uint16_t *row16 = (const uint16_t *)row;
    int64_t n = 0;
#if defined(__AVX512F__)
    const __m512i lane = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(ocp));
#endif
    for (int32_t e = e0; e < e1; e++) {
        const int64_t q0 = (int64_t)gp_s[e] * cp16;
        for (int64_t q = 0; q < cp16; q++) {
            uint32_t m = row16[q0 + q];
            const int32_t base = gp_w[e] + (int32_t)(q * 16) * ocp;
#if defined(__AVX512F__)
            __m512i v = _mm512_maskz_compress_epi32((__mmask16)m, _mm512_add_epi32(lane, _mm512_set1_epi32(base)));
            _mm512_storeu_si512((void *)(offs + n), v);
            n += __builtin_popcount(m);
#else
            while (m) { offs[n++] = base + __builtin_ctz(m) * ocp; m &= m - 1; }
#endif
        }
    }
    return n;
}

static inline __attribute__((always_inline)) void
conv_gather_tile(const int NV, const Layer *ly, int64_t p, int64_t t0, const int32_t *offs,
                 int64_t n, float *Vb, int32_t *Rb, int32_t *Cb, uint64_t *orow, float *curk, int zero,
                 int refr_on, int32_t rsteps) {
    const float thr = (float)ly->thr;
    const float *w = ly->w + t0;
    v16 acc[8];
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) acc[j] = (v16){0};
    for (int64_t i = 0; i < n; i++) {
        const float *wr = w + offs[i];
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) acc[j] += *(const v16u *)(wr + 16 * j);
    }
    const int64_t n0 = p * ly->oc + t0;
    if (curk) {  /* a synaptic node: its current (bias included) for the add that reads it */
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            *(v16 *)(curk + n0 + 16 * j) = ly->bias ? acc[j] + *(const v16u *)(ly->bias + n0 + 16 * j) : acc[j];
        return;
    }
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) {
        v16 cur = ly->bias ? acc[j] + *(const v16u *)(ly->bias + n0 + 16 * j) : acc[j];
        v16 v = *(const v16 *)(Vb + n0 + 16 * j);
        v16i r = refr_on ? *(const v16i *)(Rb + n0 + 16 * j) : (v16i){0};
        v16i mk = if16(&v, &r, cur, thr, zero, refr_on, rsteps);
        *(v16 *)(Vb + n0 + 16 * j) = v;
        *(v16i *)(Cb + n0 + 16 * j) -= mk;
        if (refr_on) *(v16i *)(Rb + n0 + 16 * j) = r;
        orow[(n0 + 16 * j) >> 6] |= (uint64_t)mask16(mk) << ((n0 + 16 * j) & 63);
    }
}

__attribute__((noinline)) static void
conv_gather_layer(const Layer *ly, int64_t kk, const uint64_t *src, int32_t *offs, float *Vb,
                  int32_t *Rb, int32_t *Cb, uint64_t *out, int64_t out_nw, float *cur, int zero, int refr_on,
                  int32_t rsteps) {
    const int64_t npos = ly->oh * ly->ow, ocp = ly->oc;
    for (int64_t k = 0; k < kk; k++) {
        const uint64_t *row = src + k * ly->src_nw;
        uint64_t *orow = out ? out + k * out_nw : NULL;
        float *curk = cur ? cur + k * ly->n_pad : NULL;
        for (int64_t p = 0; p < npos; p++) {
            const int64_t n = window_list(ly, p, row, offs);
            for (int64_t t0 = 0; t0 < ocp; t0 += 128) {
                int64_t nv = (ocp - t0) / 16;
                switch (nv > 8 ? 8 : nv) {
#define CASE(c) case c: conv_gather_tile(c, ly, p, t0, offs, n, Vb, Rb, Cb, orow, curk, zero, refr_on, rsteps); break;
                    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
                }
            }
        }
    }
}

/* One step's current of a DENSE, CONV or POOL node read through its footprint (conv and pooling)
   or weight rows (dense), spike by spike, bias included; the fused kernels above do the same sums
   in registers. Used for synaptic nodes, and by scatter_layer. */
static void step_current(const Layer *ly, const uint64_t *row, float *I) {
    const int64_t ocp = ly->oc, kstride = ly->kh * ly->kw * ly->oc;
    memset(I, 0, sizeof(float) * ly->n_pad);
    for (int64_t wd = 0; wd < ly->src_nw; wd++) {
        uint64_t word = row[wd];
        while (word) {
            int64_t i = wd * 64 + __builtin_ctzll(word);
            word &= word - 1;
            if (ly->kind == DENSE) {
                const float *wr = ly->w + i * ly->n_pad;
                for (int64_t o = 0; o < ly->n_pad; o += 16) *(v16 *)(I + o) += *(const v16u *)(wr + o);
                continue;
            }
            const int32_t s = ly->spos[i], c = ly->sch[i];
            const int32_t e1 = ly->fp_off[s + 1];
            if (ly->kind == CONV) {
                const float *wc = ly->w + c * kstride;
                const int32_t *fo = ly->fp_out, *fw = ly->fp_w;
                if (ocp == 16) {  /* the common small case: one vector, no inner loop */
                    for (int32_t e = ly->fp_off[s]; e < e1; e++)
                        *(v16 *)(I + fo[e]) += *(const v16u *)(wc + fw[e]);
                } else {
                    for (int32_t e = ly->fp_off[s]; e < e1; e++) {
                        float *dst = I + fo[e];
                        const float *wsrc = wc + fw[e];
                        for (int64_t o = 0; o < ocp; o += 16)
                            *(v16 *)(dst + o) += *(const v16u *)(wsrc + o);
                    }
                }
            } else {
                for (int32_t e = ly->fp_off[s]; e < e1; e++) I[ly->fp_out[e] + c] += 1.0f;
            }
        }
    }
    if (ly->kind == POOL) {
        if (ly->pool_mul > 0) {
            const float f = (float)ly->pool_mul;
            for (int64_t i = 0; i < ly->n_pad; i++) I[i] *= f;
        } else {
            for (int64_t i = 0; i < ly->n_pad; i++) I[i] = ly->table[(int)I[i]];
        }
    }
    if (ly->bias)
        for (int64_t i = 0; i < ly->n_pad; i++) I[i] += ly->bias[i];
}

/* IF update of a whole node for one step's current; spikes into orow, counts into Cb. */
static inline void fire_row(const Layer *ly, const float *cur, float *Vb, int32_t *Rb, int32_t *Cb,
                            uint64_t *orow, int zero, int refr_on, int32_t rsteps) {
    const float thr = (float)ly->thr;
    for (int64_t n0 = 0; n0 < ly->n_pad; n0 += 16) {
        v16 v = *(const v16 *)(Vb + n0);
        v16i r = refr_on ? *(const v16i *)(Rb + n0) : (v16i){0};
        v16i m = if16(&v, &r, *(const v16u *)(cur + n0), thr, zero, refr_on, rsteps);
        *(v16 *)(Vb + n0) = v;
        *(v16i *)(Cb + n0) -= m;
        if (refr_on) *(v16i *)(Rb + n0) = r;
        orow[n0 >> 6] |= (uint64_t)mask16(m) << (n0 & 63);
    }
}

/* Conv and pooling into IF neurons: scatter each input spike's footprint into I (channels last,
   padded to 16), then fire; or fire on a constant current. */
__attribute__((noinline)) static void scatter_layer(const Layer *ly, int64_t kk, const uint64_t *src, float *I,
                          const float *iconst, float *Vb, int32_t *Rb, int32_t *Cb, uint64_t *out,
                          int64_t out_nw, int zero, int refr_on, int32_t rsteps) {
    for (int64_t k = 0; k < kk; k++) {
        const float *cur = iconst;
        if (!iconst) {
            step_current(ly, src + k * ly->src_nw, I);
            cur = I;
        }
        fire_row(ly, cur, Vb, Rb, Cb, out + k * out_nw, zero, refr_on, rsteps);
    }
}

/* A synaptic node: its current for each step of the chunk, for the ADD nodes that read it. */
__attribute__((noinline)) static void synaptic_layer(const Layer *ly, int64_t kk, const uint64_t *src,
                                                      const float *iconst, float *cur) {
    for (int64_t k = 0; k < kk; k++) {
        if (iconst) memcpy(cur + k * ly->n_pad, iconst, sizeof(float) * ly->n_pad);
        else step_current(ly, src + k * ly->src_nw, cur + k * ly->n_pad);
    }
}

/* Residual add: IF neurons whose current is sum_i scale_i * term_i, in input order (term: an input's
   current, or its spikes as 0/1), plus the bias if any -- numpy_ref's arithmetic, op for op. */
__attribute__((noinline)) static void add_layer(const Layer *ly, int64_t kk, uint64_t *const *bits,
                                                 float *const *curs, const int64_t *nw, float *I, float *Vb,
                                                 int32_t *Rb, int32_t *Cb, uint64_t *out, int64_t out_nw,
                                                 int zero, int refr_on, int32_t rsteps) {
    const int64_t n = ly->n_pad;
    for (int64_t k = 0; k < kk; k++) {
        for (int64_t j = 0; j < ly->n_terms; j++) {
            const int64_t b = ly->term_src[j];
            const float s = ly->term_scale[j];
            if (ly->term_cur[j]) {
                const float *c = curs[b] + k * n;
                if (j == 0) for (int64_t i = 0; i < n; i++) I[i] = c[i] * s;
                else for (int64_t i = 0; i < n; i++) I[i] = I[i] + c[i] * s;
            } else {
                const uint64_t *row = bits[b] + k * nw[b];
                if (j == 0) for (int64_t i = 0; i < n; i++) I[i] = (float)((row[i >> 6] >> (i & 63)) & 1) * s;
                else for (int64_t i = 0; i < n; i++) I[i] = I[i] + (float)((row[i >> 6] >> (i & 63)) & 1) * s;
            }
        }
        if (ly->bias)
            for (int64_t i = 0; i < n; i++) I[i] += ly->bias[i];
        fire_row(ly, I, Vb, Rb, Cb, out + k * out_nw, zero, refr_on, rsteps);
    }
}

/* Spiking max pooling (Rueckauer et al. 2017): add this step's input spikes to per-input counts,
   then every window passes on the spike of its input with the largest count so far; ties go to
   the first position in row-major window order (gp_s lists a window's positions in that order,
   padding left out, so padding never wins). cnt: per input neuron, per sample. */
__attribute__((noinline)) static void maxpool_layer(const Layer *ly, int64_t kk, const uint64_t *src,
                                                     int32_t *cnt, int32_t *Cb, uint64_t *out, int64_t out_nw) {
    const int64_t icp = ly->ic, ocp = ly->oc, npos = ly->oh * ly->ow, ch = ly->n_out / (npos ? npos : 1);
    for (int64_t k = 0; k < kk; k++) {
        const uint64_t *row = src + k * ly->src_nw;
        for (int64_t wd = 0; wd < ly->src_nw; wd++) {
            uint64_t word = row[wd];
            while (word) { cnt[wd * 64 + __builtin_ctzll(word)]++; word &= word - 1; }
        }
        uint64_t *orow = out + k * out_nw;
        if (icp % 16 == 0 && ocp == icp) {  /* 16 channels at a time: counts and spike bits in lanes */
            const uint16_t *row16 = (const uint16_t *)row;
            const v16i lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
            for (int64_t p = 0; p < npos; p++) {
                const int32_t e0 = ly->gp_off[p], e1 = ly->gp_off[p + 1];
                for (int64_t g = 0; g < icp; g += 16) {
                    int64_t i = (int64_t)ly->gp_s[e0] * icp + g;
                    v16i most = *(const v16iu *)(cnt + i);
                    v16i bit = (((v16i){0} + (int32_t)row16[i >> 4]) >> lane) & 1;
                    for (int32_t e = e0 + 1; e < e1; e++) {
                        i = (int64_t)ly->gp_s[e] * icp + g;
                        const v16i c = *(const v16iu *)(cnt + i);
                        const v16i more = c > most;  /* strictly: ties keep the earlier position */
                        most = (more & c) | (~more & most);
                        bit = (more & ((((v16i){0} + (int32_t)row16[i >> 4]) >> lane) & 1)) | (~more & bit);
                    }
                    const int64_t o = p * ocp + g;
                    orow[o >> 6] |= (uint64_t)mask16(-bit) << (o & 63);
                    *(v16iu *)(Cb + o) += bit;
                }
            }
            continue;
        }
        for (int64_t p = 0; p < npos; p++) {
            const int32_t e0 = ly->gp_off[p], e1 = ly->gp_off[p + 1];
            for (int64_t c = 0; c < ch; c++) {
                int64_t best = (int64_t)ly->gp_s[e0] * icp + c;
                int32_t most = cnt[best];
                for (int32_t e = e0 + 1; e < e1; e++) {
                    const int64_t i = (int64_t)ly->gp_s[e] * icp + c;
                    if (cnt[i] > most) { most = cnt[i]; best = i; }
                }
                if ((row[best >> 6] >> (best & 63)) & 1) {
                    const int64_t o = p * ocp + c;
                    orow[o >> 6] |= 1ull << (o & 63);
                    Cb[o]++;
                }
            }
        }
    }
}

/* Channel concatenation: every input spike is copied to its place in the joined layout. */
__attribute__((noinline)) static void concat_layer(const Layer *ly, int64_t kk, uint64_t *const *bits,
                                                    const int64_t *nw, uint64_t *out, int64_t out_nw) {
    for (int64_t k = 0; k < kk; k++) {
        uint64_t *orow = out + k * out_nw;
        for (int64_t j = 0; j < ly->n_terms; j++) {
            const int64_t b = ly->term_src[j];
            const uint64_t *row = bits[b] + k * nw[b];
            const int32_t *map = ly->cat_map + ly->cat_off[j];
            const int64_t words = (ly->cat_off[j + 1] - ly->cat_off[j] + 63) / 64;
            for (int64_t wd = 0; wd < words; wd++) {
                uint64_t word = row[wd];
                while (word) {
                    const int64_t o = map[wd * 64 + __builtin_ctzll(word)];
                    orow[o >> 6] |= 1ull << (o & 63);
                    word &= word - 1;
                }
            }
        }
    }
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *amalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64)) return NULL;
    memset(p, 0, n ? (n + 63) / 64 * 64 : 64);
    return p;
}

static int spiking(const Layer *ly) { return !ly->synaptic; }
static int has_neurons(const Layer *ly) { return !ly->synaptic && ly->kind != MAXPOOL && ly->kind != CONCAT; }

/* Simulate samples taken from the shared counter until none is left. totals: spike count per
   neuron (input first, then each recorded node at tot_off, channels-last order); correct: per
   step. Returns 0, -1 (out of memory) or -3 (stopped through net->cancel; totals and correct
   are then partial). */
int64_t snn_run(const Net *net, int64_t *totals, int64_t *correct, int64_t *profile) {
    const int64_t L = net->n_layers, K = net->K, steps = net->steps;
    const int zero = (int)net->reset_zero, refr_on = net->refr_steps > 0;
    const int32_t rsteps = (int32_t)net->refr_steps;
    /* per buffer (0: input, l + 1: node l): spike bitmaps or currents; per node: state */
    uint64_t **bits = calloc(L + 1, sizeof(uint64_t *));
    float **curs = calloc(L + 1, sizeof(float *)), **V = calloc(L, sizeof(float *));
    int32_t **R = calloc(L, sizeof(int32_t *)), **C = calloc(L, sizeof(int32_t *));
    int32_t **G = calloc(L, sizeof(int32_t *));
    int64_t *nw = calloc(L + 1, sizeof(int64_t));
    int ok = bits && curs && V && R && C && G && nw, stopped = 0;
    int64_t max_pad = 16, max_in = 1;
    float *I = NULL;
    int32_t *list = NULL;
    int64_t *off = NULL;
    if (ok) {
        nw[0] = (net->n_input + 63) / 64;
        ok = (bits[0] = amalloc(sizeof(uint64_t) * K * nw[0])) != NULL;
    }
    for (int64_t l = 0; l < L && ok; l++) {
        const Layer *ly = &net->layers[l];
        nw[l + 1] = (ly->n_pad + 63) / 64;
        if (spiking(ly)) ok &= (bits[l + 1] = amalloc(sizeof(uint64_t) * K * nw[l + 1])) != NULL;
        else ok &= (curs[l + 1] = amalloc(sizeof(float) * K * ly->n_pad)) != NULL;
        if (ly->kind == MAXPOOL) ok &= (G[l] = amalloc(sizeof(int32_t) * ly->n_in)) != NULL;
        if (has_neurons(ly)) {
            ok &= (V[l] = amalloc(sizeof(float) * ly->n_pad)) != NULL;
            if (refr_on) ok &= (R[l] = amalloc(sizeof(int32_t) * ly->n_pad)) != NULL;
        }
        if (spiking(ly) && ly->kind != CONCAT) ok &= (C[l] = amalloc(sizeof(int32_t) * ly->n_pad)) != NULL;
        if (ly->n_pad > max_pad) max_pad = ly->n_pad;
        if (ly->n_in > max_in) max_in = ly->n_in;
        if (ly->kind == CONV_GATHER && ly->kh * ly->kw * ly->ic + 16 > max_in) max_in = ly->kh * ly->kw * ly->ic + 16;
    }
    max_in += 16;
    if (ok) {
        I = amalloc(sizeof(float) * max_pad);
        list = amalloc(sizeof(int32_t) * K * max_in);
        off = amalloc(sizeof(int64_t) * (K + 1));
        ok = I && list && off;
    }
    for (;;) {
        if (!ok || stopped) break;
        int64_t b = __atomic_fetch_add(net->next, 1, __ATOMIC_RELAXED);
        if (b >= net->n_samples) break;
        for (int64_t l = 0; l < L; l++) {
            const Layer *ly = &net->layers[l];
            if (V[l]) {
                if (ly->v0 == 0.0) memset(V[l], 0, sizeof(float) * ly->n_pad);
                else for (int64_t i = 0; i < ly->n_pad; i++) V[l][i] = (float)ly->v0;
            }
            if (R[l]) memset(R[l], 0, sizeof(int32_t) * ly->n_pad);
            if (G[l]) memset(G[l], 0, sizeof(int32_t) * ly->n_in);
        }
        int32_t *cnt = net->out_counts + b * net->n_classes;
        float *pot = net->membrane ? net->out_pot + b * net->n_classes : NULL;
        const int64_t label = net->labels[b];
        for (int64_t t0 = 0; t0 < steps && !stopped; t0 += K) {
            if (net->cancel && __atomic_load_n(net->cancel, __ATOMIC_RELAXED)) { stopped = 1; break; }
            const int64_t kk = steps - t0 < K ? steps - t0 : K;
            for (int64_t l = 0; l <= L; l++) if (bits[l]) memset(bits[l], 0, sizeof(uint64_t) * kk * nw[l]);
            if (!net->current) {
                const int64_t a0 = net->act_off[b], a1 = net->act_off[b + 1];
                for (int64_t k = 0; k < kk; k++) {
                    const uint32_t sk = (uint32_t)((uint64_t)(t0 + k) * 0xC2B2AE3Du + 0x27D4EB2Fu);
                    uint64_t *row = bits[0] + k * nw[0];
                    for (int64_t m = a0; m < a1; m++) {
                        const uint64_t spike = (int64_t)fmix32(net->keys[m] ^ sk) < net->thr[m];
                        const int32_t i = net->act_idx[m];
                        row[i >> 6] |= spike << (i & 63);
                        totals[i] += (int64_t)spike;
                    }
                }
            }
            for (int64_t l = 0; l < L; l++) {
                const Layer *ly = &net->layers[l];
                const int64_t started = profile ? now_ns() : 0;
                const float *iconst = net->current && ly->const_off >= 0
                    ? net->i_const + b * net->const_stride + ly->const_off : NULL;
                const uint64_t *src = bits[ly->src];
                if (ly->synaptic && ly->kind == CONV_GATHER && !iconst)
                    conv_gather_layer(ly, kk, src, list, NULL, NULL, NULL, NULL, 0, curs[l + 1], zero, refr_on, rsteps);
                else if (ly->synaptic)
                    synaptic_layer(ly, kk, src, iconst, curs[l + 1]);
                else if (ly->kind == ADD)
                    add_layer(ly, kk, bits, curs, nw, I, V[l], R[l], C[l], bits[l + 1], nw[l + 1], zero, refr_on, rsteps);
                else if (ly->kind == MAXPOOL)
                    maxpool_layer(ly, kk, src, G[l], C[l], bits[l + 1], nw[l + 1]);
                else if (ly->kind == CONCAT)
                    concat_layer(ly, kk, bits, nw, bits[l + 1], nw[l + 1]);
                else if (ly->kind == CONV_GATHER && !iconst)
                    conv_gather_layer(ly, kk, src, list, V[l], R[l], C[l], bits[l + 1], nw[l + 1], NULL,
                                      zero, refr_on, rsteps);
                else if (ly->kind == DENSE && !iconst)
                    dense_layer(ly, kk, src, list, off, V[l], R[l], C[l], bits[l + 1], nw[l + 1],
                                zero, refr_on, rsteps);
                else
                    scatter_layer(ly, kk, src, I, iconst, V[l], R[l], C[l], bits[l + 1], nw[l + 1],
                                  zero, refr_on, rsteps);
                if (profile) profile[l] += now_ns() - started;
            }
            for (int64_t k = 0; pot && k < kk; k++) {  /* membrane read-out: V += I, no threshold */
                const float *cur = curs[L] + k * net->layers[L - 1].n_pad;
                int64_t best = 0;
                for (int64_t c = 0; c < net->n_classes; c++) pot[c] = pot[c] + cur[c];
                for (int64_t c = 1; c < net->n_classes; c++) if (pot[c] > pot[best]) best = c;
                correct[t0 + k] += best == label;
            }
            for (int64_t k = 0; !pot && k < kk; k++) {
                const uint64_t *row = bits[L] + k * nw[L];
                for (int64_t wd = 0; wd < nw[L]; wd++) {
                    uint64_t word = row[wd];
                    while (word) { cnt[wd * 64 + __builtin_ctzll(word)]++; word &= word - 1; }
                }
                int64_t best = 0;
                for (int64_t c = 1; c < net->n_classes; c++) if (cnt[c] > cnt[best]) best = c;
                correct[t0 + k] += best == label;
            }
        }
        for (int64_t l = 0; l < L; l++) {  /* per-sample int32 counters into the int64 totals */
            if (!C[l]) continue;
            int64_t *tot = totals + net->layers[l].tot_off;
            for (int64_t i = 0; i < net->layers[l].n_pad; i++) tot[i] += C[l][i];
            memset(C[l], 0, sizeof(int32_t) * net->layers[l].n_pad);
        }
    }
    if (bits) for (int64_t l = 0; l <= L; l++) free(bits[l]);
    if (curs) for (int64_t l = 0; l <= L; l++) free(curs[l]);
    for (int64_t l = 0; l < L; l++) {
        if (V) free(V[l]);
        if (R) free(R[l]);
        if (C) free(C[l]);
        if (G) free(G[l]);
    }
    free(bits); free(curs); free(V); free(R); free(C); free(G); free(nw);
    free(I); free(list); free(off);
    return !ok ? -1 : stopped ? -3 : 0;
}

/* Run a model compiled by `lamina compile MODEL --shared -o build` from C, no Python:
 *
 *     main [--weights FILE] [--threads N] [--repeat R] INPUT.bin...
 *
 * Each INPUT.bin holds one input's raw bytes (e.g. float32, C order: numpy's
 * `x.astype(np.float32).tofile("x.bin")`), exactly lamina_input_bytes(m, i) of them.
 * Prints the model, then each output: a line `output I NAME DTYPE[D0,D1,...]` and its
 * values, one per line (%.9g for f32, which reads back exactly).
 * --weights: read the weights from FILE (e.g. build/model.weights.bin), not the built-in
 * ones. --threads N: then run the model R times (default 20) on each of N threads at once
 * and check that every run gave the first run's output, bit for bit.
 * Exit status: 0, 1 for a Lamina error (its message on stderr), 2 for bad usage or input
 * files, 3 when concurrent runs disagreed. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LAMINA_HEADER
#define LAMINA_HEADER "model.h"   /* NAME.h for `lamina compile --name NAME` */
#endif
#include LAMINA_HEADER

#define MAX_TENSORS 64

static lamina_model *model;
static const void *inputs[MAX_TENSORS];
static void *expected[MAX_TENSORS];   /* the first run's outputs */
static int n_in, n_out, repeat = 20;

static int lamina_failed(const char *what) {
    fprintf(stderr, "main: %s: %s\n", what, lamina_last_error());
    return 1;
}

static void *read_input(const char *path, size_t nbytes) {
    FILE *f = fopen(path, "rb");
    void *data = malloc(nbytes ? nbytes : 1);
    size_t got = f && data ? fread(data, 1, nbytes, f) : 0;
    int extra = f ? fgetc(f) != EOF : 0;
    if (f)
        fclose(f);
    if (!f || got != nbytes || extra) {
        fprintf(stderr, "main: %s: %s (the input needs exactly %zu bytes)\n", path,
                f ? "wrong size" : "cannot open", nbytes);
        free(data);
        return NULL;
    }
    return data;
}

static void **new_outputs(void) {
    void **out = calloc(MAX_TENSORS, sizeof *out);
    for (int i = 0; out && i < n_out; i++)
        out[i] = malloc(lamina_output_bytes(model, i));
    return out;
}

static void print_output(int i) {
    lamina_dtype dt = lamina_output_dtype(model, i);
    const int64_t *shape = lamina_output_shape(model, i);
    size_t n = lamina_output_bytes(model, i) / lamina_dtype_size(dt);
    printf("output %d %s %s[", i, lamina_output_name(model, i), lamina_dtype_name(dt));
    for (int d = 0; d < lamina_output_rank(model, i); d++)
        printf(d ? ",%lld" : "%lld", (long long)shape[d]);
    printf("]\n");
    for (size_t k = 0; k < n; k++) {
        const void *p = expected[i];
        switch (dt) {
        case LAMINA_F32: printf("%.9g\n", ((const float *)p)[k]); break;
        case LAMINA_F64: printf("%.17g\n", ((const double *)p)[k]); break;
        case LAMINA_I32: printf("%d\n", ((const int32_t *)p)[k]); break;
        case LAMINA_I64: printf("%lld\n", (long long)((const int64_t *)p)[k]); break;
        default: printf("%d\n", ((const unsigned char *)p)[k]); break;
        }
    }
}

/* One thread of --threads: `repeat` runs into its own outputs, each checked. */
static void *worker(void *arg) {
    long *mismatches = arg;
    void **out = new_outputs();
    for (int r = 0; out && r < repeat; r++) {
        if (lamina_run(model, inputs, out) != LAMINA_OK) {
            fprintf(stderr, "main: concurrent run: %s\n", lamina_last_error());
            ++*mismatches;
            continue;
        }
        for (int i = 0; i < n_out; i++)
            *mismatches += memcmp(out[i], expected[i], lamina_output_bytes(model, i)) != 0;
    }
    for (int i = 0; out && i < n_out; i++)
        free(out[i]);
    free(out);
    return NULL;
}

static int run_concurrently(int threads) {
    pthread_t tid[256];
    long mismatches[256] = {0}, total = 0;
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, worker, &mismatches[t]);
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        total += mismatches[t];
    }
    printf("threads: %d x %d runs, %ld differed from the first run\n", threads, repeat, total);
    return total ? 3 : 0;
}

int main(int argc, char **argv) {
    const char *weights = NULL;
    int threads = 0, first = 1;
    for (; first + 1 < argc && strncmp(argv[first], "--", 2) == 0; first += 2) {
        if (!strcmp(argv[first], "--weights")) weights = argv[first + 1];
        else if (!strcmp(argv[first], "--threads")) threads = atoi(argv[first + 1]);
        else if (!strcmp(argv[first], "--repeat")) repeat = atoi(argv[first + 1]);
        else break;
    }
    lamina_status status;
    model = lamina_create(weights, &status);
    if (!model)
        return lamina_failed("lamina_create");
    n_in = lamina_num_inputs(model), n_out = lamina_num_outputs(model);
    if (argc - first != n_in || n_out > MAX_TENSORS || threads < 0 || threads > 256) {
        fprintf(stderr, "usage: %s [--weights FILE] [--threads N<=256] [--repeat R] "
                "INPUT.bin x %d\n", argv[0], n_in);
        return 2;
    }
    printf("model: %s\n", lamina_model_info(model));
    for (int i = 0; i < n_in; i++)
        if (!(inputs[i] = read_input(argv[first + i], lamina_input_bytes(model, i))))
            return 2;
    void **out = new_outputs();
    if (!out)
        return lamina_failed("allocating the outputs");
    memcpy(expected, out, sizeof expected);
    if (lamina_run(model, inputs, out) != LAMINA_OK)
        return lamina_failed("lamina_run");
    for (int i = 0; i < n_out; i++)
        print_output(i);
    int rc = threads ? run_concurrently(threads) : 0;
    lamina_destroy(model);
    return rc;
}

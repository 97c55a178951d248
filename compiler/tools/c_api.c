/* The C API of a compiled model (c_api.h), around its entry point
 *     int32_t lamina_main(void **io, void *const *weights, void *arena)
 * from NAME.o. compiler/tools/c_api.py compiles this file with "lamina_tables.h" (the
 * model's signature, weight offsets, arena size and error messages, generated) and
 * "weights.bin" (the weights, built into the library) into libNAME.so. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_api.h"

#define LAMINA_API __attribute__((visibility("default")))
#define ALIGN 64

struct lamina_t_tensor {      /* one input or output */
    const char *name;
    lamina_dtype dtype;
    int rank;
    int dims;                 /* where its dimensions start in lamina_t_dims */
    size_t nbytes;
};

#include "lamina_tables.h"

int32_t lamina_main(void **io, void *const *weights, void *arena);
#if LAMINA_T_USES_POOL
void lamina_pool_grow(int64_t workers);
void lamina_pool_stop(void);
#endif

/* The weights, built into the library's read-only data, 64-byte aligned as the code wants
 * them (the layout of NAME.weights.bin). The symbols are hidden: no other library sees them. */
__asm__(".section .rodata\n"
        ".balign 64\n"
        ".globl lamina_t_blob\n.hidden lamina_t_blob\n"
        "lamina_t_blob:\n"
        ".incbin \"weights.bin\"\n"
        ".previous\n");
extern const unsigned char lamina_t_blob[] __attribute__((visibility("hidden")));

struct lamina_model {
    unsigned char *loaded;    /* weights read from a file, or NULL: the built-in ones */
    void *weights[LAMINA_T_NUM_WEIGHTS > 0 ? LAMINA_T_NUM_WEIGHTS : 1];
    pthread_mutex_t lock;     /* guards free_arenas only */
    void **free_arenas;       /* a stack: each arena's first word links the next */
};

/* ---- errors ------------------------------------------------------------------------ */
static _Thread_local char last_error[512];

static lamina_status fail(lamina_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

LAMINA_API const char *lamina_last_error(void) { return last_error; }

LAMINA_API const char *lamina_status_string(lamina_status status) {
    switch (status) {
    case LAMINA_OK: return "success";
    case LAMINA_ERROR_NULL_ARGUMENT: return "a required pointer was NULL";
    case LAMINA_ERROR_OUT_OF_MEMORY: return "out of memory";
    case LAMINA_ERROR_WEIGHTS_OPEN: return "weights file missing or unreadable";
    case LAMINA_ERROR_WEIGHTS_SIZE: return "weights file of the wrong size";
    case LAMINA_ERROR_WEIGHTS_CHECKSUM: return "weights file with another checksum";
    case LAMINA_ERROR_MODEL: return "the model failed at run time";
    case LAMINA_ERROR_CPU: return "compiled for CPU features this CPU lacks";
    }
    return "unknown status";
}

/* ---- the CPU: its features checked before any compiled code runs (as backends/artifact.py
 * checks a .lamina file's), since an instruction the CPU lacks would kill the process ---- */
static int has_word(const char *text, const char *word) {
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += n)
        if ((p == text || p[-1] == ' ' || p[-1] == '\t') && strchr(" \t\n", p[n]))
            return 1;   /* strchr also finds the terminating NUL: the word ends the text */
    return 0;
}

/* The flags of lamina_t_cpu_flags that /proc/cpuinfo's first `flags` line lacks; LAMINA_OK
 * where there is nothing to check or no way to (no such file or line: not x86 Linux). */
static lamina_status check_cpu(void) {
    FILE *f = lamina_t_cpu_flags[0] ? fopen("/proc/cpuinfo", "r") : NULL;
    if (!f)
        return LAMINA_OK;
    char *line = NULL, missing[256] = "";
    size_t cap = 0, used = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "flags", 5) != 0 || !strchr(" \t:", line[5]) || !strchr(line, ':'))
            continue;
        for (const char *const *flag = lamina_t_cpu_flags; *flag; flag++)
            if (!has_word(strchr(line, ':') + 1, *flag) && used < sizeof missing)
                used += snprintf(missing + used, sizeof missing - used, "%s%s",
                                 used ? ", " : "", *flag);
        break;
    }
    free(line);
    fclose(f);
    if (!missing[0])
        return LAMINA_OK;
    return fail(LAMINA_ERROR_CPU, "compiled for CPU %s with features this CPU lacks: %s; "
                "compile the model again on (or for) this machine", LAMINA_T_CPU, missing);
}

/* ---- weights ------------------------------------------------------------------------ */
static uint32_t crc32(const unsigned char *data, size_t n) {   /* zlib's CRC-32 */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Read `path` into 64-byte aligned memory, checking it is this model's weights file. */
static lamina_status read_weights(const char *path, unsigned char **out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(LAMINA_ERROR_WEIGHTS_OPEN, "cannot open weights file %s: %s", path,
                    strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return fail(LAMINA_ERROR_WEIGHTS_OPEN, "cannot read weights file %s", path);
    }
    if ((unsigned long long)size != LAMINA_T_WEIGHTS_BYTES) {
        fclose(f);
        return fail(LAMINA_ERROR_WEIGHTS_SIZE, "weights file %s has %ld bytes; this model's "
                    "weights are %llu bytes", path, size, LAMINA_T_WEIGHTS_BYTES);
    }
    unsigned char *data = aligned_alloc(ALIGN, (LAMINA_T_WEIGHTS_BYTES / ALIGN + 1) * ALIGN);
    if (!data) {
        fclose(f);
        return fail(LAMINA_ERROR_OUT_OF_MEMORY, "cannot allocate %llu bytes for the weights",
                    LAMINA_T_WEIGHTS_BYTES);
    }
    size_t got = fread(data, 1, LAMINA_T_WEIGHTS_BYTES, f);
    fclose(f);
    if (got != LAMINA_T_WEIGHTS_BYTES) {
        free(data);
        return fail(LAMINA_ERROR_WEIGHTS_OPEN, "weights file %s: read %zu of %llu bytes", path,
                    got, LAMINA_T_WEIGHTS_BYTES);
    }
    uint32_t crc = crc32(data, LAMINA_T_WEIGHTS_BYTES);
    if (crc != LAMINA_T_WEIGHTS_CRC32) {
        free(data);
        return fail(LAMINA_ERROR_WEIGHTS_CHECKSUM, "weights file %s has CRC-32 %08x, this "
                    "model's weights %08x: not the file it was compiled with", path,
                    (unsigned)crc, (unsigned)LAMINA_T_WEIGHTS_CRC32);
    }
    *out = data;
    return LAMINA_OK;
}

/* ---- the thread pool: started once per library, joined when it is unloaded ---------- */
#if LAMINA_T_USES_POOL
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static int pool_started;

static void start_pool(void) {
    pthread_mutex_lock(&pool_lock);
    if (!pool_started) {
        long threads = LAMINA_T_NUM_THREADS;
        const char *env = getenv("LAMINA_NUM_THREADS");
        long wanted = env ? strtol(env, NULL, 10) : 0;
        if (wanted >= 1 && wanted < threads)
            threads = wanted;
        lamina_pool_grow(threads - 1);
        pool_started = 1;
    }
    pthread_mutex_unlock(&pool_lock);
}

__attribute__((destructor)) static void stop_pool(void) {
    if (pool_started)
        lamina_pool_stop();
}
#else
static void start_pool(void) {}
#endif

/* ---- create / run / destroy -------------------------------------------------------- */
LAMINA_API lamina_model *lamina_create(const char *weights_path, lamina_status *status) {
    lamina_status st = LAMINA_OK;
    unsigned char *loaded = NULL;
    lamina_model *m = NULL;
    st = check_cpu();
    if (st == LAMINA_OK && weights_path)
        st = read_weights(weights_path, &loaded);
    if (st == LAMINA_OK && !(m = calloc(1, sizeof *m))) {
        free(loaded);
        st = fail(LAMINA_ERROR_OUT_OF_MEMORY, "cannot allocate a model");
    }
    if (status)
        *status = st;
    if (!m)
        return NULL;
    m->loaded = loaded;
    const unsigned char *base = loaded ? loaded : lamina_t_blob;
    for (int i = 0; i < LAMINA_T_NUM_WEIGHTS; i++)
        m->weights[i] = (void *)(base + lamina_t_weight_offsets[i]);
    pthread_mutex_init(&m->lock, NULL);
    start_pool();
    return m;
}

/* An arena for one run: a free one, else a new one. Its first ALIGN bytes hold the link. */
static void **take_arena(lamina_model *m) {
    pthread_mutex_lock(&m->lock);
    void **a = m->free_arenas;
    if (a)
        m->free_arenas = *a;
    pthread_mutex_unlock(&m->lock);
    return a ? a : aligned_alloc(ALIGN, ALIGN + (LAMINA_T_ARENA_BYTES + ALIGN - 1) / ALIGN * ALIGN);
}

static void give_arena(lamina_model *m, void **a) {
    pthread_mutex_lock(&m->lock);
    *a = m->free_arenas;
    m->free_arenas = a;
    pthread_mutex_unlock(&m->lock);
}

LAMINA_API lamina_status lamina_run(lamina_model *model, const void *const *inputs,
                                    void *const *outputs) {
    enum { N_IN = LAMINA_T_NUM_INPUTS, N_IO = LAMINA_T_NUM_INPUTS + LAMINA_T_NUM_OUTPUTS };
    void *io[N_IO > 0 ? N_IO : 1];
    if (!model)
        return fail(LAMINA_ERROR_NULL_ARGUMENT, "lamina_run: model is NULL");
    if ((N_IN && !inputs) || !outputs)
        return fail(LAMINA_ERROR_NULL_ARGUMENT, "lamina_run: %s is NULL",
                    outputs ? "inputs" : "outputs");
    for (int i = 0; i < N_IO; i++) {
        io[i] = i < N_IN ? (void *)inputs[i] : outputs[i - N_IN];
        if (!io[i])
            return fail(LAMINA_ERROR_NULL_ARGUMENT, "lamina_run: %s %d (%s) is NULL",
                        i < N_IN ? "input" : "output", i < N_IN ? i : i - N_IN,
                        lamina_t_tensors[i].name);
    }
    void **arena = take_arena(model);
    if (!arena)
        return fail(LAMINA_ERROR_OUT_OF_MEMORY, "cannot allocate an arena of %llu bytes",
                    LAMINA_T_ARENA_BYTES);
    int32_t rc = lamina_main(io, model->weights, (unsigned char *)arena + ALIGN);
    give_arena(model, arena);
    if (rc == 0)
        return LAMINA_OK;
    const char *what = rc > 0 && rc <= LAMINA_T_NUM_ERRORS ? lamina_t_errors[rc - 1]
                                                           : "an unknown runtime error";
    return fail(LAMINA_ERROR_MODEL, "the model failed with status %d: %s", (int)rc, what);
}

LAMINA_API void lamina_destroy(lamina_model *model) {
    if (!model)
        return;
    for (void **a = model->free_arenas, **next; a; a = next) {
        next = *a;
        free(a);
    }
    pthread_mutex_destroy(&model->lock);
    free(model->loaded);
    free(model);
}

/* ---- the signature ------------------------------------------------------------------ */
static const struct lamina_t_tensor *tensor(const lamina_model *m, int i, int output) {
    int n = output ? LAMINA_T_NUM_OUTPUTS : LAMINA_T_NUM_INPUTS;
    if (!m || i < 0 || i >= n)
        return NULL;
    return &lamina_t_tensors[i + (output ? LAMINA_T_NUM_INPUTS : 0)];
}

#define SIGNATURE(kind, output)                                                          \
    LAMINA_API const char *lamina_##kind##_name(const lamina_model *m, int i) {          \
        const struct lamina_t_tensor *t = tensor(m, i, output);                          \
        return t ? t->name : NULL;                                                       \
    }                                                                                    \
    LAMINA_API lamina_dtype lamina_##kind##_dtype(const lamina_model *m, int i) {        \
        const struct lamina_t_tensor *t = tensor(m, i, output);                          \
        return t ? t->dtype : LAMINA_DTYPE_INVALID;                                      \
    }                                                                                    \
    LAMINA_API int lamina_##kind##_rank(const lamina_model *m, int i) {                  \
        const struct lamina_t_tensor *t = tensor(m, i, output);                          \
        return t ? t->rank : -1;                                                         \
    }                                                                                    \
    LAMINA_API const int64_t *lamina_##kind##_shape(const lamina_model *m, int i) {      \
        const struct lamina_t_tensor *t = tensor(m, i, output);                          \
        return t ? lamina_t_dims + t->dims : NULL;                                       \
    }                                                                                    \
    LAMINA_API const char *lamina_##kind##_dim_name(const lamina_model *m, int i,        \
                                                    int dim) {                           \
        (void)m, (void)i, (void)dim;                                                     \
        return NULL; /* every dimension is fixed at compile time */                      \
    }                                                                                    \
    LAMINA_API size_t lamina_##kind##_bytes(const lamina_model *m, int i) {              \
        const struct lamina_t_tensor *t = tensor(m, i, output);                          \
        return t ? t->nbytes : 0;                                                        \
    }

SIGNATURE(input, 0)
SIGNATURE(output, 1)

LAMINA_API int lamina_num_inputs(const lamina_model *m) {
    return m ? LAMINA_T_NUM_INPUTS : -1;
}

LAMINA_API int lamina_num_outputs(const lamina_model *m) {
    return m ? LAMINA_T_NUM_OUTPUTS : -1;
}

LAMINA_API size_t lamina_dtype_size(lamina_dtype dtype) {
    static const size_t sizes[] = {0, 4, 8, 4, 8, 1};
    return (unsigned)dtype < sizeof sizes / sizeof *sizes ? sizes[dtype] : 0;
}

LAMINA_API const char *lamina_dtype_name(lamina_dtype dtype) {
    static const char *const names[] = {"invalid", "f32", "f64", "i32", "i64", "bool"};
    return names[(unsigned)dtype < sizeof names / sizeof *names ? dtype : 0];
}

LAMINA_API const char *lamina_model_info(const lamina_model *m) {
    return m ? lamina_t_info : NULL;
}

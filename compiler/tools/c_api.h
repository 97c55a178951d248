/* ---- The Lamina C API of lib<name>.so (`lamina compile MODEL --shared -o DIR`) ----------
 *
 *   lamina_status st;
 *   lamina_model *m = lamina_create(NULL, &st);        (NULL: the weights built into the
 *   if (!m) { fprintf(stderr, "%s\n", lamina_last_error()); return 1; }   library)
 *   const void *in[] = {x};  void *out[] = {y};         (buffers of lamina_input_bytes(m, i)
 *   if (lamina_run(m, in, out) != LAMINA_OK) ...        and lamina_output_bytes(m, i))
 *   lamina_destroy(m);
 *
 * Build: cc main.c -L. -l<name> -Wl,-rpath,'$ORIGIN' (or dlopen the library). The library
 * needs only libc, libm and libpthread: no Python, no LLVM, no Lamina install. It exports
 * only the functions below, so each model's code stays private to its library; to use two
 * models in one process, dlopen each library (their lamina_* names are the same).
 *
 * Buffers: C-contiguous (row-major), each aligned for its element type; inputs are only
 * read; outputs are written whole. Tensors are numbered as in the model's signature.
 *
 * Threads: lamina_run is thread-safe. Every run takes a scratch arena of its own from a
 * per-model pool guarded by a mutex (held only to take and return an arena, never while
 * the model runs), so N concurrent runs of one model use N arenas, allocated on first need
 * and kept until lamina_destroy. A model compiled for several threads also starts its
 * worker threads on the first lamina_create ($LAMINA_NUM_THREADS caps them; workers join
 * when the library is unloaded or the process exits); runs that find the workers busy with
 * another run compute on their own thread, with the same results.
 *
 * Errors: functions that can fail return a lamina_status (lamina_create: NULL, and the
 * status through its last argument when not NULL); lamina_last_error() then says what
 * failed, in a message kept per thread, so concurrent runs never see each other's errors.
 *
 * Shapes and symbolic dimensions: lamina_input_shape gives `rank` dimensions, where -1
 * would mark a dimension fixed only at run time and lamina_input_dim_name its name. Every
 * dimension is fixed at compile time today: no -1, and lamina_input_dim_name returns NULL.
 */
#ifndef LAMINA_C_API_H
#define LAMINA_C_API_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lamina_model lamina_model;

typedef enum lamina_status {
    LAMINA_OK = 0,
    LAMINA_ERROR_NULL_ARGUMENT = 1,     /* a required pointer was NULL */
    LAMINA_ERROR_OUT_OF_MEMORY = 2,     /* weights or an arena could not be allocated */
    LAMINA_ERROR_WEIGHTS_OPEN = 3,      /* the weights file is missing or unreadable */
    LAMINA_ERROR_WEIGHTS_SIZE = 4,      /* the weights file is shorter or longer than the
                                           model's weights */
    LAMINA_ERROR_WEIGHTS_CHECKSUM = 5,  /* the weights file is not the one compiled with
                                           (CRC-32 mismatch) */
    LAMINA_ERROR_MODEL = 6,             /* the compiled code detected a runtime error (an
                                           index out of range, ...); the message says which */
    LAMINA_ERROR_CPU = 7                /* compiled for CPU features this CPU lacks (x86
                                           Linux checks /proc/cpuinfo before any code runs) */
} lamina_status;

typedef enum lamina_dtype {
    LAMINA_DTYPE_INVALID = 0,           /* what an index out of range gets */
    LAMINA_F32 = 1, LAMINA_F64 = 2, LAMINA_I32 = 3, LAMINA_I64 = 4,
    LAMINA_BOOL = 5                     /* one byte, 0 or 1 */
} lamina_dtype;

/* A model instance. weights_path: NULL runs on the weights built into the library; a
 * path reads weights from that file instead (the NAME.weights.bin `lamina compile` wrote
 * beside the library, or one of the same layout), checked for its size and CRC-32.
 * Returns NULL on failure, with the status in *status when status is not NULL. */
lamina_model *lamina_create(const char *weights_path, lamina_status *status);

/* Run once: inputs[i] points at input i, outputs[i] at output i's buffer. Thread-safe. */
lamina_status lamina_run(lamina_model *model, const void *const *inputs,
                         void *const *outputs);

/* Free the model (NULL is fine). No run of it may be in progress. */
void lamina_destroy(lamina_model *model);

/* The message of the last failure on the calling thread ("" when none). */
const char *lamina_last_error(void);
/* A short fixed description of a status ("weights file missing or unreadable", ...). */
const char *lamina_status_string(lamina_status status);

/* The signature. Indexes out of range (or model NULL) get NULL, -1, 0 or
 * LAMINA_DTYPE_INVALID. Shapes hold `rank` dimensions; -1 would be a symbolic one. */
int lamina_num_inputs(const lamina_model *model);
int lamina_num_outputs(const lamina_model *model);
const char *lamina_input_name(const lamina_model *model, int i);
const char *lamina_output_name(const lamina_model *model, int i);
lamina_dtype lamina_input_dtype(const lamina_model *model, int i);
lamina_dtype lamina_output_dtype(const lamina_model *model, int i);
int lamina_input_rank(const lamina_model *model, int i);
int lamina_output_rank(const lamina_model *model, int i);
const int64_t *lamina_input_shape(const lamina_model *model, int i);
const int64_t *lamina_output_shape(const lamina_model *model, int i);
const char *lamina_input_dim_name(const lamina_model *model, int i, int dim);
const char *lamina_output_dim_name(const lamina_model *model, int i, int dim);
size_t lamina_input_bytes(const lamina_model *model, int i);
size_t lamina_output_bytes(const lamina_model *model, int i);

/* Bytes per element (0 for LAMINA_DTYPE_INVALID) and the IR's name ("f32", ...). */
size_t lamina_dtype_size(lamina_dtype dtype);
const char *lamina_dtype_name(lamina_dtype dtype);
/* One line on what was compiled: graph, Lamina version, CPU, fp mode, threads. */
const char *lamina_model_info(const lamina_model *model);

#ifdef __cplusplus
}
#endif
#endif /* LAMINA_C_API_H */

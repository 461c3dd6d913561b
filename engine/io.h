/* io.h - raw little-endian tensor data in files: bounds-checked reads at an offset with
 * conversion to float32, and atomic writes (temp file + fsync + rename).
 *
 * File formats (.npy, safetensors) are parsed and formatted in Lua (lua/agop/io.lua);
 * this file only moves numbers, so that a malformed header can never make C read or
 * write outside a file or a buffer. */
#ifndef AG_IO_H
#define AG_IO_H

#include "ag.h"

#include <stdint.h>

/* Element types of stored data, all little-endian. */
typedef enum {
    AG_DT_F32,
    AG_DT_F64,
    AG_DT_F16,
    AG_DT_BF16,
    AG_DT_I64,
    AG_DT_I32,
    AG_DT_I16,
    AG_DT_I8,
    AG_DT_U8,
    AG_DT_BOOL,
    AG_DT_COUNT
} AgDtype;

/* Bytes per element. */
int ag_dtype_size(AgDtype dt);
/* The safetensors name ("F32", "BF16", ...). */
const char *ag_dtype_name(AgDtype dt);
/* From a safetensors name; 0, or -1 (no message) when unknown. */
int ag_dtype_from_name(const char *name, AgDtype *dt);

/* Size in bytes of the regular file at path. */
int ag_file_size(const char *path, int64_t *size, AgError *err);

/* out[0..n) = the n elements of type dt stored at byte offset `offset` of the file,
 * converted to float32 (integers and F64 rounded to nearest). The range
 * [offset, offset + n * size(dt)) must lie inside the file: else an error naming the
 * file, the range and the file size; nothing is read then.
 *   out: (n) floats */
int ag_read_elems(float *out, const char *path, int64_t offset, int64_t n, AgDtype dt,
                  AgError *err);

/* One piece of a file to write: either raw bytes (data == NULL), or n floats stored as
 * dt (F32, F64 or I64; I64 needs integral values, else an error). */
typedef struct AgWritePart {
    const void *bytes; /* nbytes raw bytes, used when data == NULL */
    int64_t nbytes;
    const float *data; /* (n) floats */
    int64_t n;
    AgDtype dt;
} AgWritePart;

/* Writes the parts one after another to path, atomically: into a temporary file in the
 * same folder, flushed and fsync'ed, then renamed over path (and the folder fsync'ed).
 * On any error the temporary file is removed and path is untouched. */
int ag_write_atomic(const char *path, const AgWritePart *parts, int nparts, AgError *err);

#endif

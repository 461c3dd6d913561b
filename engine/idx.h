/* idx.h - a strict reader for IDX files (the MNIST format), raw or gzip-compressed.
 *
 * An IDX file is: two zero bytes, a type byte (0x08 = unsigned byte, the only type
 * supported here), a rank byte r, r big-endian uint32 sizes, then the items in C order.
 * The reader validates all of it and names the file and the fault:
 *   "train-labels-idx1-ubyte: header says 60000 items, file holds 59990".
 * gzip is detected by content (magic 1f 8b), not by name, and inflated with zlib. */
#ifndef AG_IDX_H
#define AG_IDX_H

#include "ag.h"

#include <stddef.h>
#include <stdint.h>

#define AG_IDX_MAXDIM 8
/* Limit on the product of the header's sizes (bytes of data), a 0 counted as 1. */
#define AG_IDX_MAXBYTES ((int64_t)1 << 40)

typedef struct AgIdx {
    uint8_t *data;               /* numel bytes, C order; owned: free with ag_idx_free */
    int dim;                     /* rank, 1 .. AG_IDX_MAXDIM */
    int64_t size[AG_IDX_MAXDIM]; /* sizes as read: size[0] is min(limit, items) */
    int64_t items;               /* size[0] in the header (all items in the file) */
    int64_t numel;               /* product of size[] */
} AgIdx;

/* Reads the file at path into out (which is zeroed first; on failure it holds nothing).
 *   limit:     keep only the first `limit` items (size[0]); < 0 keeps all. A raw file is
 *              still checked whole against its header (its length; labels); a gzip file
 *              is inflated only as far as the kept items need, and when it is read to
 *              its end, bytes after the last gzip member are an error. A gzip header
 *              that claims more than 1032 bytes of data per byte of file is refused.
 *   max_label: when >= 0, every kept byte must be <= max_label (for label files).
 * Returns 0, or -1 with err naming the file (its base name) and the fault. */
int ag_idx_read(AgIdx *out, const char *path, int64_t limit, int max_label, AgError *err);

/* The same from a memory buffer of len bytes (raw IDX, not gzip); name is used in
 * messages. out->data is a fresh copy. */
int ag_idx_parse(AgIdx *out, const uint8_t *buf, size_t len, const char *name, int64_t limit,
                 int max_label, AgError *err);

void ag_idx_free(AgIdx *idx);

/* Converts items [first, first + n) to float as torchvision's ToTensor + Normalize do,
 * y = ((float)x / div - mean) / std (div = 1, mean = 0, std = 1 keeps the raw 0..255),
 * optionally padding the last two dimensions by pad zero pixels on each side first
 * (so the border gets (0 - mean) / std, the value of a black pixel).
 *   y:   n * item_out floats, out, contiguous, where item_out is the item size with the
 *        last two sizes H, W grown to H + 2*pad, W + 2*pad
 *   idx: rank >= 3 when pad > 0 (item sizes ..., H, W)
 * The caller checks 0 <= first, first + n <= idx->size[0], div > 0 and std != 0. */
void ag_idx_to_float(float *y, const AgIdx *idx, int64_t first, int64_t n, int pad, float div,
                     float mean, float std);

#endif

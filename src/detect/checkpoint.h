/*
 * checkpoint.h - the detector's local checkpoint files (docs/detect.md,
 * "Recovery").
 *
 * A checkpoint generation G is one file <dir>/ckpt-<G>.bin holding, for each
 * partition the process owned, the engine's saved state and the partition's
 * next offset.  The Kafka commit of that offset carries "ckpt:<G>" as its
 * metadata, so a restarted consumer loads a partition's state only when the
 * committed offset and the file agree.
 *
 * File layout (little-endian as the machine writes it; the file never moves
 * between machines): "FSDETCK1", u32 version (1), u32 count, then count
 * entries { i32 partition, i64 next_offset, u64 len, len bytes }, then an
 * FNV-1a 64 checksum of everything before it.
 */
#ifndef FS_DETECT_CHECKPOINT_H
#define FS_DETECT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

struct ckpt_writer {
    char *buf;
    size_t len, cap;
    uint32_t count;
    int failed; /* out of memory */
};

/* Starts a new file image (count patched by ckpt_finish). */
void ckpt_begin(struct ckpt_writer *w);
/* Opens an entry: returns the offset of its len field (patched by
 * ckpt_entry_end) or (size_t)-1 on OOM.  The entry's bytes are then appended
 * to w->buf/len/cap by the caller (detect_engine_save_partition). */
size_t ckpt_entry_begin(struct ckpt_writer *w, int partition, int64_t next_offset);
void ckpt_entry_end(struct ckpt_writer *w, size_t len_at);
/* Appends the checksum and writes the image to dir/ckpt-<gen>.bin
 * durably: a temporary file, fsync, rename, fsync of the directory.
 * Returns 0, or -1 with a reason in err. */
int ckpt_finish_write(struct ckpt_writer *w, const char *dir, uint64_t gen, char *err, size_t err_size);
void ckpt_writer_release(struct ckpt_writer *w);

/* A file read back whole and verified. */
struct ckpt_file {
    uint64_t gen;
    char *buf;
    size_t len;
};

/* Reads and verifies dir/ckpt-<gen>.bin.  Returns 0, or -1 (missing, torn,
 * foreign: reason in err). */
int ckpt_read(const char *dir, uint64_t gen, struct ckpt_file *f, char *err, size_t err_size);
/* Finds the entry of partition at exactly next_offset: returns 1 and its
 * bytes, else 0. */
int ckpt_find(const struct ckpt_file *f, int partition, int64_t next_offset, const char **data, size_t *len);
void ckpt_file_release(struct ckpt_file *f);

/* "ckpt:<gen>" metadata: parses it, returns 1 and *gen, else 0. */
int ckpt_parse_meta(const void *meta, size_t size, uint64_t *gen);

/* Highest generation of a ckpt-<G>.bin in dir (0 when none). */
uint64_t ckpt_max_gen(const char *dir);
/* Removes dir/ckpt-<gen>.bin (missing is fine). */
void ckpt_remove(const char *dir, uint64_t gen);
/* Removes every ckpt-*.bin and stray temporary file of dir except keep. */
void ckpt_remove_others(const char *dir, uint64_t keep);

#endif

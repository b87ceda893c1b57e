/*
 * records.h - kitedrop's input: the record stream sendmail writes.
 */
#ifndef KITE_KITEDROP_RECORDS_H
#define KITE_KITEDROP_RECORDS_H

#include <stddef.h>

#include "qfile.h"
#include "vbuf.h"

/* A reader: exactly len bytes into buf; 0, or -1 at the end of input or on error. */
typedef int (*kd_read_fn)(void *ctx, void *buf, size_t len);

/*
 * kd_copy_records - check the stream record by record and copy what is
 * allowed into the writer (attributes on the allow list, recipient groups,
 * content up to size_limit bytes (0: none), the end marker; nothing may
 * follow it). Returns 0, or a sysexits.h code with the reason in why.
 */
int kd_copy_records(kd_read_fn read_fn, void *ctx, qfile_writer *w, long size_limit, vbuf *why);

#endif

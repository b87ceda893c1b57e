/*
 * queue_id - queue IDs: unique across processes and restarts, sortable by
 * time, safe as file names ([0-9A-Z] only, fixed length QUEUE_ID_LEN).
 */
#ifndef KITE_QUEUE_ID_H
#define KITE_QUEUE_ID_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define QUEUE_ID_LEN 18
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)

/* queue_id_make - the ID for a file created at (sec, usec) with inode ino */
void queue_id_make(char id[QUEUE_ID_SIZE], time_t sec, long usec, ino_t ino);
int queue_id_valid(const char *id);
/* queue_id_time - the creation time encoded in an ID; -1 if invalid */
time_t queue_id_time(const char *id);
/* queue_id_usec - the microseconds part of the creation time; -1 if invalid */
long queue_id_usec(const char *id);

#endif

/*
 * queue_id - queue IDs that are unique, sortable by time and safe as file
 * names (see queue_id.h).
 *
 * Layout (18 characters, base 36 digits 0-9A-Z, most significant first):
 *   7 characters  seconds since the epoch (good until the year 4400)
 *   4 characters  microseconds (0..999999)
 *   7 characters  inode number of the queue file (folded modulo 36^7)
 * Fixed width makes string order equal time order. Two files that exist at
 * the same time on one file system have different inode numbers, so two
 * processes that create their files in the same microsecond still get
 * different IDs; the queue code creates the file first, then names it.
 * Trusts nothing in IDs it is given: queue_id_valid checks every character.
 */
#include <string.h>

#include "queue_id.h"

#define QID_SEC_LEN 7
#define QID_USEC_LEN 4
#define QID_INO_LEN 7

static const char qid_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* qid_put - write value as width base-36 digits (value reduced mod 36^width) */
static void qid_put(char *out, unsigned long long value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = qid_digits[value % 36];
        value /= 36;
    }
}

/* qid_digit - value of one base-36 digit, or -1 */
static int qid_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return -1;
}

/* qid_get - decode width digits; -1 on a bad character */
static long long qid_get(const char *in, int width)
{
    long long v = 0;

    for (int i = 0; i < width; i++) {
        int d = qid_digit(in[i]);

        if (d < 0)
            return -1;
        v = v * 36 + d;
    }
    return v;
}

/* queue_id_make - the ID for a file created at (sec, usec) with inode ino */
void queue_id_make(char id[QUEUE_ID_SIZE], time_t sec, long usec, ino_t ino)
{
    if (sec < 0)
        sec = 0;
    if (usec < 0 || usec > 999999)
        usec = 0;
    qid_put(id, (unsigned long long) sec, QID_SEC_LEN);
    qid_put(id + QID_SEC_LEN, (unsigned long long) usec, QID_USEC_LEN);
    qid_put(id + QID_SEC_LEN + QID_USEC_LEN, (unsigned long long) ino, QID_INO_LEN);
    id[QUEUE_ID_LEN] = 0;
}

/* queue_id_valid - exactly QUEUE_ID_LEN characters [0-9A-Z], microseconds in range */
int queue_id_valid(const char *id)
{
    if (id == NULL || strnlen(id, QUEUE_ID_SIZE) != QUEUE_ID_LEN)
        return 0;
    for (int i = 0; i < QUEUE_ID_LEN; i++)
        if (qid_digit(id[i]) < 0)
            return 0;
    return qid_get(id + QID_SEC_LEN, QID_USEC_LEN) <= 999999;
}

/* queue_id_time - the creation time (seconds) encoded in an ID; -1 if invalid */
time_t queue_id_time(const char *id)
{
    if (!queue_id_valid(id))
        return (time_t) -1;
    return (time_t) qid_get(id, QID_SEC_LEN);
}

/* queue_id_usec - the microseconds part of the creation time; -1 if invalid */
long queue_id_usec(const char *id)
{
    if (!queue_id_valid(id))
        return -1;
    return (long) qid_get(id + QID_SEC_LEN, QID_USEC_LEN);
}

/*
 * events - the event loop (epoll) with timers and signal delivery, for the
 * event-driven daemons (qmgr, the many-clients servers, master).
 *
 * Callbacks run from event_loop(); none runs re-entrantly. Timers have one
 * second resolution for scheduling (like Postfix) but fire in order. Signals
 * registered with event_signal() arrive through a self-pipe and run as
 * ordinary callbacks.
 */
#ifndef KITE_EVENTS_H
#define KITE_EVENTS_H

#include <time.h>

#define EVENT_READ  (1 << 0)
#define EVENT_WRITE (1 << 1)
#define EVENT_ERROR (1 << 2)            /* hang-up or error on the fd */

typedef void (*event_fn)(int fd, int events, void *ctx);
typedef void (*event_timer_fn)(void *ctx);
typedef void (*event_signal_fn)(int sig);

/* The callback for a descriptor; interest is READ, WRITE or both. */
void event_enable_read(int fd, event_fn fn, void *ctx);
void event_enable_write(int fd, event_fn fn, void *ctx);
/*
 * event_enable_read_exclusive - read interest in a descriptor that several
 * processes wait on (a shared listening socket): each event wakes one idle
 * waiter (EPOLLEXCLUSIVE), not all of them; the others' accept would only
 * fail with EAGAIN. Falls back to an ordinary registration on kernels
 * without it. Stays exclusive until the descriptor's interest ends.
 */
void event_enable_read_exclusive(int fd, event_fn fn, void *ctx);
void event_disable_read(int fd);
void event_disable_write(int fd);
void event_remove(int fd);              /* before closing the fd */

/* Timers: (fn, ctx) identifies a timer; setting it again moves it. */
void event_timer_set(event_timer_fn fn, void *ctx, long delay_ms);
void event_timer_cancel(event_timer_fn fn, void *ctx);

void event_signal(int sig, event_signal_fn fn);

/* event_loop - wait up to timeout_ms (-1: until something happens), run callbacks */
void event_loop(long timeout_ms);
void event_run(void);                   /* until event_stop() */
void event_stop(void);

time_t event_now(void);                 /* time() cached per iteration */

/* event_reset - drop all state (after fork in a child that won't use it) */
void event_reset(void);

#endif

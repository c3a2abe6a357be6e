// The Linux calls the relay core needs that Swift's Glibc module does not import (epoll, eventfd), as
// plain functions over plain types: `struct epoll_event` is packed on x86-64, so the wait call unpacks it
// into two arrays here instead of Swift reading the packed layout (issue #15 part 2, Sources/RelayCore).
#ifndef CRELAYCORE_H
#define CRELAYCORE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

extern const uint32_t crelay_epollin;
extern const uint32_t crelay_epollout;
extern const uint32_t crelay_epollrdhup;
extern const uint32_t crelay_epollhup;
extern const uint32_t crelay_epollerr;
extern const uint32_t crelay_epollet;

/// epoll_create1(EPOLL_CLOEXEC).
int crelay_epoll_create(void);
/// epoll_ctl(EPOLL_CTL_ADD) with `events` and `data` as the event's u64.
int crelay_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
/// epoll_ctl(EPOLL_CTL_DEL): the descriptor leaves the set (a paused listener, accept back-off).
int crelay_epoll_del(int epfd, int fd);
/// epoll_wait into `datas` and `events` (each `max` long); returns the count, or -1 with errno.
int crelay_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms);
/// accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC) (a GNU extension Glibc does not import).
int crelay_accept(int fd);
/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
int crelay_eventfd(void);
/// Blocks SIGTERM and SIGINT in the calling thread (threads created after it inherit the mask) and
/// returns a blocking signalfd(2) that reads them, or -1: the signals are then read as data, and no work
/// runs in a signal handler. Call before any other thread starts.
int crelay_termination_signalfd(void);
/// Reads one signal from such a descriptor (blocking): its number, or -1.
int crelay_read_signal(int fd);

#ifdef __cplusplus
}
#endif

#endif

#define _GNU_SOURCE
#include "CRelayCore.h"

#include <pthread.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/socket.h>

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

const uint32_t crelay_epollin = EPOLLIN;
const uint32_t crelay_epollout = EPOLLOUT;
const uint32_t crelay_epollrdhup = EPOLLRDHUP;
const uint32_t crelay_epollhup = EPOLLHUP;
const uint32_t crelay_epollerr = EPOLLERR;
const uint32_t crelay_epollet = EPOLLET;

int crelay_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int crelay_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event = {.events = events, .data = {.u64 = data}};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int crelay_epoll_del(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int crelay_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buffer[256];
    if (max > 256) max = 256;
    int count = epoll_wait(epfd, buffer, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        datas[i] = buffer[i].data.u64;
        events[i] = buffer[i].events;
    }
    return count;
}

int crelay_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
int crelay_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int crelay_termination_signalfd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC);
}

int crelay_read_signal(int fd) {
    struct signalfd_siginfo info;
    ssize_t count = read(fd, &info, sizeof info);
    return count == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

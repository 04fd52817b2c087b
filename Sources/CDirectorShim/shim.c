// The out-of-line helpers: CPU_SET, pthread_setaffinity_np and setns need _GNU_SOURCE, which must
// not leak into the header Swift imports (it changes glibc's struct definitions there).
#define _GNU_SOURCE 1
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include "CDirectorShim.h"

int director_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int director_name_current_thread(const char *name) {
    char truncated[16];
    snprintf(truncated, sizeof(truncated), "%s", name);
    return pthread_setname_np(pthread_self(), truncated);
}

int director_enter_network_namespace(int namespace_fd) {
    return setns(namespace_fd, CLONE_NEWNET) == 0 ? 0 : errno;
}

int director_make_current_thread_realtime(int priority) {
    struct sched_param parameter = { .sched_priority = priority };
    return pthread_setschedparam(pthread_self(), SCHED_FIFO, &parameter);
}

int director_wait_readable(int fd, uint64_t timeout_ns) {
    struct pollfd descriptor = { .fd = fd, .events = POLLIN };
    struct timespec timeout = { .tv_sec = (time_t)(timeout_ns / 1000000000ull), .tv_nsec = (long)(timeout_ns % 1000000000ull) };
    return ppoll(&descriptor, 1, &timeout, NULL);
}

int director_accept(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

int director_peer_credentials(int fd, uint32_t *uid, int32_t *pid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return errno;
    *uid = credentials.uid;
    *pid = credentials.pid;
    return 0;
}

int director_spawn(const char *path, char *const argv[], const char *input, const char *output, const char *errors, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (errors != NULL) {
        posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0644);
    } else {
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
    }
    int closing = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (closing != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return closing;
    }
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    extern char **environ;
    int result = posix_spawn(pid, path, &actions, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return result;
}

// The out-of-line helpers: CPU_SET, pthread_setaffinity_np and setns need _GNU_SOURCE, which must
// not leak into the header Swift imports (it changes glibc's struct definitions there).
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include "CDirectorShim.h"

int director_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int director_enter_network_namespace(int namespace_fd) {
    return setns(namespace_fd, CLONE_NEWNET) == 0 ? 0 : errno;
}

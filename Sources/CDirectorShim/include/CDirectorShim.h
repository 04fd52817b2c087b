// The C side of the director: Linux packet-socket, BPF and libnuma headers, and the handful of
// helpers Swift cannot express directly (atomic access to kernel-shared ring words, union fields,
// function-like macros). Everything here is `static inline`: no C code is linked but libnuma.
#ifndef CDIRECTOR_SHIM_H
#define CDIRECTOR_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <numa.h>

// MARK: - TPACKET_V3 receive blocks

/// Reads a block's status word with acquire ordering: the kernel writes the frames, then
/// publishes the block by setting TP_STATUS_USER; we must see the frames once we see the flag.
static inline uint32_t director_rx_block_status(const struct tpacket_block_desc *block) {
    return __atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
}

/// Hands a block back to the kernel (netsniff-ng's `user_may_pull_from_rx_block` in reverse).
/// Release ordering: our reads of the frames happen before the kernel may overwrite them.
static inline void director_rx_block_release(struct tpacket_block_desc *block) {
    __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

static inline uint32_t director_rx_block_packet_count(const struct tpacket_block_desc *block) {
    return block->hdr.bh1.num_pkts;
}

static inline uint32_t director_rx_block_first_offset(const struct tpacket_block_desc *block) {
    return block->hdr.bh1.offset_to_first_pkt;
}

// MARK: - TPACKET_V2 receive frames

/// Status word of an RX-ring frame (TPACKET_V2), acquire ordering: the kernel copies the frame,
/// then sets TP_STATUS_USER; once we see the flag we must see the bytes.
static inline uint32_t director_rx_frame_status(const struct tpacket2_hdr *frame) {
    return __atomic_load_n(&frame->tp_status, __ATOMIC_ACQUIRE);
}

/// Hands an RX-ring frame back to the kernel; release ordering: our reads come first.
static inline void director_rx_frame_release(struct tpacket2_hdr *frame) {
    __atomic_store_n(&frame->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

// MARK: - TPACKET_V2 transmit frames

/// Status word of a TX-ring frame, read with acquire ordering (the kernel sets it back to
/// TP_STATUS_AVAILABLE once the frame has been sent and its memory may be reused).
static inline uint32_t director_tx_frame_status(const struct tpacket2_hdr *frame) {
    return __atomic_load_n(&frame->tp_status, __ATOMIC_ACQUIRE);
}

/// Publishes a filled TX frame to the kernel; release ordering so the frame bytes are visible first.
static inline void director_tx_frame_publish(struct tpacket2_hdr *frame, uint32_t length) {
    frame->tp_len = length;
    __atomic_store_n(&frame->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
}

/// Where frame data starts in a TPACKET_V2 TX slot when PACKET_TX_HAS_OFF is not used
/// (the kernel's `tp_hdrlen - sizeof(struct sockaddr_ll)`).
static inline uint32_t director_tx_data_offset(void) {
    return TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
}

// MARK: - AF_XDP rings

/// An AF_XDP ring's producer and consumer words are free-running u32 indexes shared with the
/// kernel: the side that reads descriptors loads the other side's index with acquire (the
/// descriptors it covers are written), and publishes its own with release (the descriptors it
/// wrote, or is done with, are the kernel's).
static inline uint32_t director_load_acquire_u32(const uint32_t *index) {
    return __atomic_load_n(index, __ATOMIC_ACQUIRE);
}

static inline void director_store_release_u32(uint32_t *index, uint32_t value) {
    __atomic_store_n(index, value, __ATOMIC_RELEASE);
}

// MARK: - Counters shared between a worker and the control thread

/// Single writer (the worker), any number of readers; relaxed ordering is enough because a
/// reader only needs each counter to be a value that really existed, not a consistent set.
static inline void director_store_relaxed_u64(uint64_t *slot, uint64_t value) {
    __atomic_store_n(slot, value, __ATOMIC_RELAXED);
}

static inline uint64_t director_load_relaxed_u64(const uint64_t *slot) {
    return __atomic_load_n(slot, __ATOMIC_RELAXED);
}

// MARK: - Threads and CPUs

/// Pins the calling thread to one CPU (pthread_setaffinity_np; in shim.c, which needs
/// _GNU_SOURCE). Returns 0 or an errno value.
int director_pin_current_thread(int cpu);

/// Names the calling thread, as `top -H`, `ps -L` and /proc/<pid>/task/<tid>/comm show it
/// (pthread_setname_np, the first 15 bytes; in shim.c). Returns 0 or an errno value.
int director_name_current_thread(const char *name);

/// Moves the calling thread into the network namespace open at `namespace_fd` (setns with
/// CLONE_NEWNET; in shim.c). Returns 0 or an errno value.
int director_enter_network_namespace(int namespace_fd);

/// Waits up to `timeout_ns` for `fd` to become readable (ppoll; in shim.c, which needs _GNU_SOURCE).
int director_wait_readable(int fd, uint64_t timeout_ns);

/// Gives the calling thread SCHED_FIFO at `priority` (1–99; in shim.c). Returns 0 or an errno value.
int director_make_current_thread_realtime(int priority);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): a connection on a listening socket; -1 and errno on failure.
int director_accept(int fd);

/// The credentials of the process at the other end of a Unix socket (SO_PEERCRED), from the
/// kernel. 0, or errno.
int director_peer_credentials(int fd, uint32_t *uid, int32_t *pid);

/// posix_spawn(3) of `path` with `argv` (NULL-terminated), standard input from `input`, output
/// to `output` (created and appended to) and errors to `errors` (or to the output when NULL).
/// The child gets none of this process's other descriptors: a daemon it starts would hold them
/// open for as long as it lives. It starts with no signal blocked and every signal at its
/// default: the calling thread may block the signals a daemon waits for (SIGHUP, SIGINT,
/// SIGTERM), and a child inheriting that mask could never be stopped by them, nor anything it
/// runs in turn. 0 and `*pid`, or an errno.
int director_spawn(const char *path, char *const argv[], const char *input, const char *output, const char *errors, pid_t *pid);

static inline int director_errno(void) { return errno; }

/// CLOCK_REALTIME in nanoseconds: stamps that cross to the peer dispatcher (replica lag), the
/// only clock two hosts can compare.
static inline uint64_t director_realtime_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/// CLOCK_MONOTONIC in nanoseconds: the one clock the data path uses for timeouts.
static inline uint64_t director_monotonic_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/// The calling thread's CPU time in nanoseconds: what a stretch of its work cost, without the
/// time it waited for a CPU (preemption, the hypervisor's steal). Softirq work the kernel runs in
/// the thread's context counts, unless the kernel accounts interrupt time apart.
static inline uint64_t director_thread_cpu_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

#endif

// The layout shared by the XDP fast path (Sources/FastPathProgram/fast_path.bpf.c, compiled for
// the BPF target) and the director that fills its maps. One header, so both sides agree on every
// byte; only fixed-width kernel types, so it compiles for both targets.
#ifndef DIRECTOR_FAST_PATH_H
#define DIRECTOR_FAST_PATH_H

#include <linux/types.h>

/// An established IPv4 flow, as the client's frames carry it (addresses and ports in network
/// byte order, straight from the headers).
struct director_fast_flow_key {
    __u32 client_address;
    __u32 virtual_address;
    __u16 client_port;
    __u16 virtual_port;
    __u8 protocol;
    __u8 padding[3];
};

/// Where a flow's frames go, and when the program last forwarded one. The worker writes every
/// field but the last; the program writes the last.
struct director_fast_flow {
    __u8 server_mac[6];
    __u8 back_mac[6];
    /// The flush generation the worker offered the flow under: the program forwards the flow only
    /// while it equals the configuration's (a flush is one map update, not a walk). 32 bits, so
    /// an entry a lost withdrawal left behind never matches again.
    __u32 generation;
    /// The statistics ids its frames count under (`TrafficCounters`): its real server's and its
    /// virtual service's.
    __u16 server_id;
    __u16 service_id;
    __u32 padding;
    /// CLOCK_MONOTONIC of the last frame forwarded, ns (bpf_ktime_get_ns).
    __u64 last_seen_ns;
};

/// The ids the program counts traffic for, per real server and per virtual service: the
/// director numbers both from 1 as it meets them, so these are the first 4,095 servers and
/// services of its life (as Katran's 4,096 reals). A frame with a higher id is forwarded all the
/// same; it is missing from that id's count and counted in `DIRECTOR_FAST_UNCOUNTED_TRAFFIC`.
#define DIRECTOR_FAST_TRAFFIC_IDS 4096

/// Packets and IP bytes (the IP header's total length, as IPVS and the workers count them) the
/// program forwarded for one id, on one CPU.
struct director_fast_traffic {
    __u64 packets;
    __u64 bytes;
};

/// The program's one-element configuration.
struct director_fast_path_config {
    /// Frames of a flow are the director's only when sent to the VIPs' MAC.
    __u8 virtual_mac[6];
    __u8 padding[2];
    /// Bucket count - 1 (a power of two minus one): `ClientBucket`.
    __u32 bucket_mask;
    __u32 generation;
    /// CLOCK_MONOTONIC (ns) until which the director vouches for its flows: renewed with every
    /// heartbeat to the peer, so a director that dies or hangs stops forwarding in the program
    /// before its peer declares it dead and takes its buckets, even while the kernel is still
    /// tearing the dead process down (its link closes last).
    __u64 lease_expires_ns;
};

/// The program's counters, per CPU: one slot per reason.
enum director_fast_path_counter {
    DIRECTOR_FAST_REDIRECTED = 0,
    DIRECTOR_FAST_REDIRECTED_BYTES,
    DIRECTOR_FAST_DROPPED_NOT_OWNED,
    DIRECTOR_FAST_PASSED_NOT_IPV4,
    DIRECTOR_FAST_PASSED_FRAGMENT,
    DIRECTOR_FAST_PASSED_OTHER_PROTOCOL,
    /// Not to the VIPs' MAC and a VIP: the host's own traffic, NAT replies, health checks.
    DIRECTOR_FAST_PASSED_NOT_ADDRESSED,
    DIRECTOR_FAST_PASSED_CONTROL_SEGMENT,
    DIRECTOR_FAST_PASSED_NO_FLOW,
    DIRECTOR_FAST_PASSED_STALE_FLOW,
    DIRECTOR_FAST_PASSED_TRUNCATED,
    DIRECTOR_FAST_REDIRECT_FAILED,
    DIRECTOR_FAST_PASSED_LEASE_EXPIRED,
    /// Redirected for a server or service id beyond DIRECTOR_FAST_TRAFFIC_IDS: in no per-id count.
    DIRECTOR_FAST_UNCOUNTED_TRAFFIC,
    DIRECTOR_FAST_COUNTER_COUNT
};

#endif

// The director's XDP fast path, on the front interface.
//
// A frame of an established flow that this dispatcher owns is rewritten as direct routing does
// (the real server's MAC, the back interface's as source) and redirected to the back interface
// before the kernel allocates anything for it. Every other frame goes on to the stack, where the
// TPACKET_V3 ring and the workers handle it as without the fast path: SYN, FIN and RST segments
// (the workers follow each connection's state), flows the workers have not offered, ARP, IPv6,
// VLAN-tagged frames, fragments. Frames for a VIP in a bucket the other dispatcher owns are
// dropped here, as the socket filter would drop them from the ring; frames for anything else
// (the host's own traffic, health checks, NAT replies on a one-armed director) are never touched.
//
// The workers stay the brain: they put a flow in `flows` once it is established and proven,
// take it out when it ends, and read `last_seen_ns` for expiry and for the peer's refreshes; the
// program counts what it forwards under the flow's real server and service, as the workers count
// the ring's frames; the director renews a lease with every heartbeat, and the program forwards
// nothing once it lapses.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "director_fast_path.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct director_fast_path_config);
} config SEC(".maps");

/// The IPv4 VIPs (network byte order): only their frames are the program's business.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, __u8);
} virtual_addresses SEC(".maps");

/// One byte per client bucket: 1 when this dispatcher owns it. A takeover is a map update.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, __u8);
} ownership SEC(".maps");

/// Least-recently-used: an entry the workers' withdrawals missed ages out rather than filling
/// the map; a live flow pushed out merely goes back to the ring, whose worker offers it again.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 262144);
    __type(key, struct director_fast_flow_key);
    __type(value, struct director_fast_flow);
} flows SEC(".maps");

/// Slot 0: the back interface.
struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} back_interface SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DIRECTOR_FAST_COUNTER_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/// What the program forwarded per real server and per virtual service, by statistics id: the
/// director adds it to what its workers forwarded through the ring (`ipvsadm -L --stats`).
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DIRECTOR_FAST_TRAFFIC_IDS);
    __type(key, __u32);
    __type(value, struct director_fast_traffic);
} server_traffic SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DIRECTOR_FAST_TRAFFIC_IDS);
    __type(key, __u32);
    __type(value, struct director_fast_traffic);
} service_traffic SEC(".maps");

static __always_inline void count(__u32 counter, __u64 amount) {
    __u64 *slot = bpf_map_lookup_elem(&counters, &counter);
    if (slot) *slot += amount;
}

/// One forwarded packet of `bytes` under id `id` of `traffic`; false if the id is beyond the map.
static __always_inline int count_traffic(void *traffic, __u32 id, __u64 bytes) {
    struct director_fast_traffic *slot = bpf_map_lookup_elem(traffic, &id);
    if (!slot) return 0;
    slot->packets += 1;
    slot->bytes += bytes;
    return 1;
}

static __always_inline int pass(__u32 counter) {
    count(counter, 1);
    return XDP_PASS;
}

/// `ClientBucket.hash`: the same 32-bit multiply, xor and shift steps, on host-order values.
static __always_inline __u32 client_hash(__u32 address, __u16 port) {
    __u32 x = address ^ ((__u32)port * 0x9E3779B1u);
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

/// Two-byte loads: the Ethernet header is only 2-byte aligned on some drivers.
static __always_inline int same_mac(const __u8 *a, const __u8 *b) {
    const __u16 *x = (const __u16 *)a, *y = (const __u16 *)b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

SEC("xdp")
int director_fast_path(struct xdp_md *context) {
    void *data = (void *)(long)context->data;
    void *end = (void *)(long)context->data_end;

    struct ethhdr *ethernet = data;
    if ((void *)(ethernet + 1) > end) return pass(DIRECTOR_FAST_PASSED_TRUNCATED);
    if (ethernet->h_proto != bpf_htons(ETH_P_IP)) return pass(DIRECTOR_FAST_PASSED_NOT_IPV4);

    struct iphdr *ip = (void *)(ethernet + 1);
    if ((void *)(ip + 1) > end) return pass(DIRECTOR_FAST_PASSED_TRUNCATED);
    if (ip->version != 4 || ip->ihl < 5) return pass(DIRECTOR_FAST_PASSED_TRUNCATED);

    __u32 zero = 0;
    struct director_fast_path_config *settings = bpf_map_lookup_elem(&config, &zero);
    if (!settings) return XDP_PASS;
    // Only a VIP's frames sent to the VIPs' MAC: the host's own traffic passes untouched.
    if (!same_mac(ethernet->h_dest, settings->virtual_mac) || !bpf_map_lookup_elem(&virtual_addresses, &ip->daddr)) {
        return pass(DIRECTOR_FAST_PASSED_NOT_ADDRESSED);
    }
    // Later fragments carry no ports; first fragments go to the workers too, which forward
    // them whole (rare on a load balancer's front).
    if (ip->frag_off & bpf_htons(0x3FFF)) return pass(DIRECTOR_FAST_PASSED_FRAGMENT);
    if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) return pass(DIRECTOR_FAST_PASSED_OTHER_PROTOCOL);

    // The ports are the first four bytes of both headers.
    __u16 *ports = (void *)ip + ip->ihl * 4;
    if ((void *)(ports + 2) > end) return pass(DIRECTOR_FAST_PASSED_TRUNCATED);

    __u32 bucket = client_hash(bpf_ntohl(ip->saddr), bpf_ntohs(ports[0])) & settings->bucket_mask;
    __u8 *owned = bpf_map_lookup_elem(&ownership, &bucket);
    if (!owned || !*owned) {
        count(DIRECTOR_FAST_DROPPED_NOT_OWNED, 1);
        return XDP_DROP;
    }

    if (ip->protocol == IPPROTO_TCP) {
        struct tcphdr *tcp = (void *)ports;
        if ((void *)(tcp + 1) > end) return pass(DIRECTOR_FAST_PASSED_TRUNCATED);
        // Segments that open, close or reset a connection change its state: the workers'.
        if (tcp->syn || tcp->fin || tcp->rst) return pass(DIRECTOR_FAST_PASSED_CONTROL_SEGMENT);
    }

    struct director_fast_flow_key key = {
        .client_address = ip->saddr,
        .virtual_address = ip->daddr,
        .client_port = ports[0],
        .virtual_port = ports[1],
        .protocol = ip->protocol,
    };
    // A director that stopped renewing its lease is dead or hung: its peer is about to carry
    // its flows, and frames the ring no longer reads are frames nobody forwards twice.
    __u64 now = bpf_ktime_get_ns();
    if (now > settings->lease_expires_ns) return pass(DIRECTOR_FAST_PASSED_LEASE_EXPIRED);
    struct director_fast_flow *flow = bpf_map_lookup_elem(&flows, &key);
    if (!flow) return pass(DIRECTOR_FAST_PASSED_NO_FLOW);
    if (flow->generation != settings->generation) return pass(DIRECTOR_FAST_PASSED_STALE_FLOW);

    __u64 ip_bytes = bpf_ntohs(ip->tot_len);
    __builtin_memcpy(ethernet->h_dest, flow->server_mac, ETH_ALEN);
    __builtin_memcpy(ethernet->h_source, flow->back_mac, ETH_ALEN);
    // One CPU forwards a flow's frames (its receive queue): a plain store is enough.
    flow->last_seen_ns = now;

    // bpf_redirect_map fails here only if the slot is empty; a back interface whose driver
    // cannot take XDP frames fails later, in the kernel (the xdp:xdp_redirect_err tracepoint).
    long action = bpf_redirect_map(&back_interface, 0, 0);
    if (action != XDP_REDIRECT) {
        count(DIRECTOR_FAST_REDIRECT_FAILED, 1);
        return action;
    }
    count(DIRECTOR_FAST_REDIRECTED, 1);
    count(DIRECTOR_FAST_REDIRECTED_BYTES, (__u64)(end - data));
    int counted = count_traffic(&server_traffic, flow->server_id, ip_bytes);
    counted &= count_traffic(&service_traffic, flow->service_id, ip_bytes);
    if (!counted) count(DIRECTOR_FAST_UNCOUNTED_TRAFFIC, 1);
    return XDP_REDIRECT;
}

// The project's license: the program calls no GPL-only helper.
char LICENSE[] SEC("license") = "Apache-2.0";

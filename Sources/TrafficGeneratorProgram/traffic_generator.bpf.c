// The benchmark's traffic generator, run by the kernel in a loop (BPF_PROG_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES) over frames initialised from a template: each run makes the
// template frame n of a plan of established flows, as FrameSynthesizer writes it, and
// redirects it to the generator's interface. The frames leave as XDP frames, with no socket
// buffer, so the device under test receives them as a driver's DMA buffers reach XDP: a device
// whose program forwards them never pays for a socket buffer, and one that needs the stack
// builds it from the frame, as it would from a NIC's (without copying it, unlike a frame sent
// through a packet socket, which veth copies before XDP may touch it).
//
// Every run writes the template's headers over the frame, then the fields a frame varies in,
// checksums included: the kernel does not put the template back between the runs that reuse a
// page, and a page comes back as the devices downstream left it (a DR rewrite changes the MACs).
//
// The program paces itself: a system call that starts the loop costs milliseconds (the kernel
// swaps its XDP dispatcher, waiting for RCU), so one call runs the whole window, and a run that
// comes before the next frame is due, or after the last, drops its frame at once.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "director_traffic_generator.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct director_generator_config);
} config SEC(".maps");

/// The one's-complement sum of `words` 16-bit words at `at`, unfolded.
static __always_inline __u32 sum_words(const __u16 *at, int words) {
    __u32 sum = 0;
#pragma unroll
    for (int i = 0; i < words; i++) sum += at[i];
    return sum;
}

static __always_inline __u16 fold(__u32 sum) {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return (__u16)~sum;
}

/// The stamp after the TCP header: the packet number in the flow, then the send time in ns.
struct stamp {
    __be32 packet;
    __be32 sent_high;
    __be32 sent_low;
};

SEC("xdp")
int director_traffic_generator(struct xdp_md *context) {
    void *data = (void *)(long)context->data;
    void *end = (void *)(long)context->data_end;
    struct ethhdr *ethernet = data;
    struct iphdr *ip = (void *)(ethernet + 1);
    struct tcphdr *tcp = (void *)(ip + 1);
    struct stamp *stamp = (void *)(tcp + 1);
    if ((void *)(stamp + 1) > end) return XDP_ABORTED;
    __u32 zero = 0;
    struct director_generator_config *plan = bpf_map_lookup_elem(&config, &zero);
    if (!plan || plan->flows == 0 || plan->ports_per_address == 0) return XDP_ABORTED;

    // One CPU runs the loop: nothing here needs an atomic step.
    if (plan->next_frame >= plan->end_frame) return XDP_DROP;
    __u64 now = bpf_ktime_get_ns();
    if (plan->interval_fp && plan->burst_left == 0) {
        // From the run's beginning: 2^54 ns (208 days) before the shift wraps.
        __u64 elapsed_fp = (now - plan->start_ns) << 10;
        if (elapsed_fp < plan->next_due_fp) return XDP_DROP;
        __u32 burst = plan->burst >= 1 && plan->burst <= 64 ? plan->burst : 1;
        // Kept off its CPU, the loop catches up with at most 64 frames back to back (bursts
        // included): the device's queue holds 256, and what is skipped is not offered (the
        // run's rate shows it).
        __u64 slack = (64 - burst) * plan->interval_fp;
        if (elapsed_fp - plan->next_due_fp > slack) plan->next_due_fp = elapsed_fp - slack;
        plan->burst_left = burst;
        plan->next_due_fp += burst * plan->interval_fp;
    }
    if (plan->interval_fp) plan->burst_left--;
    __u64 n = plan->next_frame++;
    __builtin_memcpy(data, plan->headers, DIRECTOR_GENERATOR_HEADERS);
    __u32 flow = n % plan->flows;
    __u32 packet = n / plan->flows;
    __u32 address = plan->first_client + flow / plan->ports_per_address;
    __u16 port = plan->first_port + flow % plan->ports_per_address;
    // A byte stream's sequence numbers: each segment takes its payload.
    __u32 sequence = 1 + (packet - 1) * plan->payload_length;
    __u64 sent = now + plan->realtime_offset_ns;

    ip->saddr = bpf_htonl(address);
    ip->check = 0;
    ip->check = fold(sum_words((const __u16 *)ip, sizeof(*ip) / 2));

    tcp->source = bpf_htons(port);
    tcp->seq = bpf_htonl(sequence);
    stamp->packet = bpf_htonl(packet);
    stamp->sent_high = bpf_htonl((__u32)(sent >> 32));
    stamp->sent_low = bpf_htonl((__u32)sent);
    // The payload past the stamp is the template's zeros (no device writes there): the TCP sum
    // covers the pseudo-header, the header and the stamp.
    tcp->check = 0;
    __u32 segment_length = sizeof(*tcp) + plan->payload_length;
    __u32 sum = sum_words((const __u16 *)&ip->saddr, 4) + bpf_htons(IPPROTO_TCP) + bpf_htons((__u16)segment_length)
        + sum_words((const __u16 *)tcp, sizeof(*tcp) / 2) + sum_words((const __u16 *)stamp, sizeof(*stamp) / 2);
    tcp->check = fold(sum);
    return bpf_redirect(plan->output_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";

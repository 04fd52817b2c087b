// The layout shared by the benchmark's XDP traffic generator (traffic_generator.bpf.c) and
// director-bench, which writes it before every run of the program.
#ifndef DIRECTOR_TRAFFIC_GENERATOR_H
#define DIRECTOR_TRAFFIC_GENERATOR_H

#include <linux/types.h>

/// Ethernet, IPv4 without options, TCP without options.
#define DIRECTOR_GENERATOR_HEADERS 54

/// A plan of established flows (`TrafficPlan`, pattern `established`): frame n belongs to flow
/// n % flows, is that flow's packet n / flows, and comes from client address
/// first_client + flow / ports_per_address, port first_port + flow % ports_per_address.
struct director_generator_config {
    /// The plan's number of the next frame; the program takes it and advances it.
    __u64 next_frame;
    /// CLOCK_REALTIME less CLOCK_MONOTONIC, ns: the stamp is in the sink's clock, the realtime
    /// one of the kernel's receive time stamps.
    __u64 realtime_offset_ns;
    /// The number past the last frame to make: from there on every run drops its frame.
    __u64 end_frame;
    /// The pace: when the run began (CLOCK_MONOTONIC, ns), and in 1/1024 ns the time between
    /// frames (0: flat out) and when the next burst is due, counted from that beginning. A run
    /// before that drops its frame: the kernel's loop is the clock.
    __u64 start_ns;
    __u64 interval_fp;
    __u64 next_due_fp;
    /// Frames sent back to back when a burst is due (as a NIC's interrupt moderation hands a
    /// driver several at once; 1…64), and what is left of the current one.
    __u32 burst;
    __u32 burst_left;
    __u32 flows;
    /// Host byte order.
    __u32 first_client;
    /// The bytes after the TCP header: the stamp, then zeros (the template's).
    __u32 payload_length;
    /// Where every frame goes: the generator's own interface, which hands it to its peer.
    __u32 output_ifindex;
    __u16 first_port;
    __u16 ports_per_address;
    /// The template's Ethernet, IPv4 and TCP headers, written over every frame before its own
    /// fields: the devices rewrite frames in place, and pages come back to the loop as they left.
    __u8 headers[DIRECTOR_GENERATOR_HEADERS];
    __u8 padding[6];
};

#endif

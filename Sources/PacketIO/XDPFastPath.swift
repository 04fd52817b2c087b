import CDirectorShim
import CFastPath
import DirectorCore
import DirectorWire
import FastPathProgram
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The XDP fast path on the front interface (`fast_path.bpf.c`): loaded from the object the build
/// embedded, attached through a BPF link (the kernel detaches it when the director exits, however
/// it exits: a dead director's program must not go on forwarding the flows its peer took over),
/// and the maps through which the workers steer it.
///
/// Every method is a map operation, one system call, safe from any thread: the workers offer and
/// withdraw flows and read when the program last saw one; the sync thread moves bucket ownership.
public final class XDPFastPath: @unchecked Sendable {
    /// How the program runs on the interface.
    public enum AttachMode: String, Sendable {
        /// In the driver, before the kernel allocates a socket buffer: the fast one.
        case driver
        /// After the socket buffer is made (any driver): correct, and slower.
        case generic
    }

    /// nil: loaded, not attached (`attaching: false`, for `testRun`).
    public let mode: AttachMode?
    public let interface: NetworkInterface
    public let flowCapacity: Int
    private let object: OpaquePointer
    /// The BPF link; -1 once detached (or never attached).
    private let link: Atomic<Int32>
    private let program: Int32
    private let flows: Int32
    private let configuration: Int32
    private let ownershipMap: Int32
    private let virtualAddressMap: Int32
    private let counters: Int32
    private let serverTraffic: Int32
    private let serviceTraffic: Int32
    private let possibleCPUs: Int
    private let backMAC: MACAddress
    /// The configuration as last written, and bucket ownership as the map has it: changed under
    /// the lock (the sync thread moves ownership; the maintenance thread and the workers flush).
    private let control: Mutex<(settings: director_fast_path_config, ownership: BucketOwnership, virtualAddresses: Set<IPv4Address>)>
    private let currentGeneration = Atomic<UInt32>(0)

    /// Loads the program and attaches it to `front`, in driver mode if the driver has it, in
    /// generic mode otherwise (or only in `mode` when given). Without `attaching`, the program
    /// is only loaded: frames reach it through `testRun`.
    public init(front: NetworkInterface, back: NetworkInterface, virtualMAC: MACAddress, ownership: BucketOwnership,
                flowCapacity: Int, mode requested: AttachMode? = nil, attaching: Bool = true) throws(SystemCallError) {
        director_fast_path_capture_libbpf_messages()
        interface = front
        backMAC = back.mac
        self.flowCapacity = flowCapacity
        let opened = try XDPFastPath.open(FastPathProgram.object, named: FastPathProgram.programName)
        object = opened
        var cleanUp = true
        defer { if cleanUp { bpf_object__close(opened) } }
        guard let flowMap = bpf_object__find_map_by_name(opened, "flows") else { throw XDPFastPath.failure("finding the flows map", errno: ENOENT) }
        bpf_map__set_max_entries(flowMap, UInt32(flowCapacity))
        let loaded = bpf_object__load(opened)
        guard loaded == 0 else { throw XDPFastPath.failure("loading the program into the kernel", errno: -loaded) }
        func descriptor(_ name: String) throws(SystemCallError) -> Int32 {
            let fd = bpf_object__find_map_fd_by_name(opened, name)
            guard fd >= 0 else { throw XDPFastPath.failure("finding map \(name)", errno: -fd) }
            return fd
        }
        flows = try descriptor("flows")
        configuration = try descriptor("config")
        ownershipMap = try descriptor("ownership")
        virtualAddressMap = try descriptor("virtual_addresses")
        counters = try descriptor("counters")
        serverTraffic = try descriptor("server_traffic")
        serviceTraffic = try descriptor("service_traffic")
        let devices = try descriptor("back_interface")
        possibleCPUs = Int(max(libbpf_num_possible_cpus(), 1))
        guard let found = bpf_object__find_program_by_name(opened, FastPathProgram.programName) else {
            throw XDPFastPath.failure("finding the program", errno: ENOENT)
        }
        program = bpf_program__fd(found)

        var settings = director_fast_path_config()
        XDPFastPath.store(virtualMAC, in: &settings.virtual_mac)
        settings.bucket_mask = ownership.bucketCount - 1
        settings.generation = 0
        settings.lease_expires_ns = director_monotonic_nanoseconds() + XDPFastPath.initialLeaseNanoseconds
        var zero: UInt32 = 0
        try XDPFastPath.check(bpf_map_update_elem(configuration, &zero, &settings, UInt64(BPF_ANY)), "writing the configuration")
        var backIndex = UInt32(back.index)
        try XDPFastPath.check(bpf_map_update_elem(devices, &zero, &backIndex, UInt64(BPF_ANY)),
                              "adding \(back.name) to the redirect map (its driver must accept XDP frames)")
        for bucket in 0..<ownership.bucketCount {
            var key = bucket
            var owned: UInt8 = ownership.owns(bucket) ? 1 : 0
            try XDPFastPath.check(bpf_map_update_elem(ownershipMap, &key, &owned, UInt64(BPF_ANY)), "writing bucket ownership")
        }

        // Driver mode first: generic mode works everywhere and is the fallback.
        let modes: [AttachMode] = !attaching ? [] : requested.map { [$0] } ?? [.driver, .generic]
        var attached: (Int32, AttachMode)?
        var lastError: Int32 = 0
        for mode in modes {
            var options = bpf_link_create_opts()
            options.sz = MemoryLayout<bpf_link_create_opts>.size
            options.flags = UInt32(mode == .driver ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE)
            let fd = bpf_link_create(program, front.index, BPF_XDP, &options)
            if fd >= 0 {
                attached = (fd, mode)
                break
            }
            lastError = -fd
        }
        if !attaching {
            link = Atomic(-1)
            mode = nil
        } else if let (link, mode) = attached {
            // The kernel makes BPF descriptors close-on-exec: no child holds the link.
            self.link = Atomic(link)
            self.mode = mode
        } else {
            throw XDPFastPath.failure("attaching the program to \(front.name) (\(modes.map(\.rawValue).joined(separator: " or ")) mode)", errno: lastError)
        }
        control = Mutex((settings, ownership, []))
        cleanUp = false
    }

    deinit {
        detach()
        bpf_object__close(object)
    }

    /// Takes the program off the interface (closing its link): frames go to the stack again.
    /// Idempotent; the maps stay readable until the last reference goes.
    public func detach() {
        let fd = link.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { close(fd) }
    }

    // MARK: - Flows (the workers)

    /// Lets the program forward `flow`'s frames (overwrites an earlier offer of the flow).
    /// False if the kernel refused (the map's memory); the flow stays on the ring.
    public func offer(_ flow: FastPathFlow, generation: UInt32, nowNanoseconds: UInt64) -> Bool {
        var key = XDPFastPath.key(of: flow)
        var value = director_fast_flow()
        XDPFastPath.store(flow.serverMAC, in: &value.server_mac)
        XDPFastPath.store(backMAC, in: &value.back_mac)
        value.generation = generation
        value.server_id = flow.serverID
        value.service_id = flow.serviceID
        value.last_seen_ns = nowNanoseconds
        return bpf_map_update_elem(flows, &key, &value, UInt64(BPF_ANY)) == 0
    }

    /// Stops the program forwarding `flow` (nothing if it has no such flow).
    public func withdraw(_ flow: FastPathFlow) {
        var key = XDPFastPath.key(of: flow)
        _ = bpf_map_delete_elem(flows, &key)
    }

    /// When the program last forwarded a frame of `flow` (CLOCK_MONOTONIC ms), or when the flow
    /// was offered; nil if the map no longer has it.
    public func lastSeenMilliseconds(_ flow: FastPathFlow) -> UInt64? {
        var key = XDPFastPath.key(of: flow)
        var value = director_fast_flow()
        guard bpf_map_lookup_elem(flows, &key, &value) == 0 else { return nil }
        return value.last_seen_ns / 1_000_000
    }

    // MARK: - Control (the director and its sync thread)

    /// Moves bucket ownership: one map update per bucket that changes hands, each atomic; the
    /// program is not reattached.
    public func setOwnership(_ new: BucketOwnership) throws(SystemCallError) {
        try control.withLock { (state) throws(SystemCallError) in
            precondition(new.bucketCount == state.ownership.bucketCount, "the bucket count never changes")
            for bucket in 0..<new.bucketCount where new.owns(bucket) != state.ownership.owns(bucket) {
                var key = bucket
                var owned: UInt8 = new.owns(bucket) ? 1 : 0
                try XDPFastPath.check(bpf_map_update_elem(ownershipMap, &key, &owned, UInt64(BPF_ANY)), "moving bucket \(bucket)")
                // Each bucket as it moves: a failure half-way leaves the map as it says.
                state.ownership.set(bucket, owned: new.owns(bucket))
            }
        }
    }

    /// Makes `addresses` the IPv4 VIPs whose frames the program handles (the rest it passes):
    /// called at start and with every service snapshot.
    public func setVirtualAddresses(_ addresses: Set<IPv4Address>) throws(SystemCallError) {
        try control.withLock { (state) throws(SystemCallError) in
            for address in state.virtualAddresses.subtracting(addresses) {
                var key = address.rawValue.bigEndian
                _ = bpf_map_delete_elem(virtualAddressMap, &key)
                state.virtualAddresses.remove(address)
            }
            for address in addresses.subtracting(state.virtualAddresses) {
                var key = address.rawValue.bigEndian
                var one: UInt8 = 1
                try XDPFastPath.check(bpf_map_update_elem(virtualAddressMap, &key, &one, UInt64(BPF_ANY)), "adding VIP \(address)")
                state.virtualAddresses.insert(address)
            }
        }
    }

    /// The flush generation workers offer flows under.
    public var generation: UInt32 { currentGeneration.load(ordering: .acquiring) }

    /// Invalidates every flow in the map at once: the program forwards only flows offered under
    /// the new generation, and the workers offer each again when its next frame reaches them.
    /// Used when real servers or their MACs change, and when a withdrawal could not be queued.
    /// If the kernel refuses the update the flows stay as they were, and that is said.
    public func flush() {
        control.withLock { state in
            let next = state.settings.generation &+ 1
            var settings = state.settings
            settings.generation = next
            var zero: UInt32 = 0
            let result = bpf_map_update_elem(configuration, &zero, &settings, UInt64(BPF_ANY))
            guard result == 0 else {
                flushFailures.add(1, ordering: .relaxed)
                return
            }
            state.settings = settings
            currentGeneration.store(next, ordering: .releasing)
        }
    }

    /// How long the program forwards after loading before the first renewal.
    static let initialLeaseNanoseconds: UInt64 = 2_000_000_000

    /// Lets the program forward until `until` (CLOCK_MONOTONIC ns): called with every heartbeat
    /// (or, without a peer, by the maintenance thread). False if the kernel refused the update.
    @discardableResult
    public func renewLease(until: UInt64) -> Bool {
        control.withLock { state in
            var settings = state.settings
            settings.lease_expires_ns = until
            var zero: UInt32 = 0
            guard bpf_map_update_elem(configuration, &zero, &settings, UInt64(BPF_ANY)) == 0 else { return false }
            state.settings = settings
            return true
        }
    }

    /// Flushes the kernel refused (counted; the director's maintenance retries with the next one).
    public let flushFailures = Atomic<UInt64>(0)

    /// Runs the program once on `frame` in the kernel (BPF_PROG_TEST_RUN), maps and all: its
    /// action (XDP_DROP, XDP_PASS, XDP_REDIRECT, …) and the frame as it left.
    public func testRun(_ frame: [UInt8]) throws(SystemCallError) -> (action: UInt32, frame: [UInt8]) {
        try XDPFastPath.testRun(program, on: frame, "running the program on a test frame")
    }

    /// Opens a BPF object the build embedded (not yet loaded into the kernel). Named, so
    /// libbpf's messages and bpftool say whose program it is.
    public static func open(_ object: [UInt8], named name: String) throws(SystemCallError) -> OpaquePointer {
        let opened = object.withUnsafeBytes { bytes in
            name.withCString { name in
                var options = bpf_object_open_opts()
                options.sz = MemoryLayout<bpf_object_open_opts>.size
                options.object_name = name
                return bpf_object__open_mem(bytes.baseAddress, bytes.count, &options)
            }
        }
        guard let opened else { throw XDPFastPath.failure("opening the embedded program \(name)", errno: errno) }
        return opened
    }

    /// Runs XDP program `program` (a descriptor) once on `frame` in the kernel, not live: its
    /// action and the frame as it left. `context` names the run in an error.
    public static func testRun(_ program: Int32, on frame: [UInt8], _ context: String) throws(SystemCallError) -> (action: UInt32, frame: [UInt8]) {
        var output = [UInt8](repeating: 0, count: frame.count + 256)
        var options = bpf_test_run_opts()
        options.sz = MemoryLayout<bpf_test_run_opts>.size
        options.repeat = 1
        let result = frame.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                options.data_in = input.baseAddress
                options.data_size_in = UInt32(input.count)
                options.data_out = out.baseAddress
                options.data_size_out = UInt32(out.count)
                return bpf_prog_test_run_opts(program, &options)
            }
        }
        try XDPFastPath.check(result, context)
        return (options.retval, Array(output.prefix(Int(options.data_size_out))))
    }

    /// The program's counters, summed over CPUs.
    public func counterValues() -> [UInt64] {
        var values = [UInt64](repeating: 0, count: Int(DIRECTOR_FAST_COUNTER_COUNT.rawValue))
        var perCPU = [UInt64](repeating: 0, count: possibleCPUs)
        for index in values.indices {
            var key = UInt32(index)
            guard bpf_map_lookup_elem(counters, &key, &perCPU) == 0 else { continue }
            values[index] = perCPU.reduce(0, &+)
        }
        return values
    }

    /// The statistics ids the program counts traffic for: 0 up to this, for servers and services
    /// alike; a flow with a higher id is forwarded, and its frames also count as
    /// `fast_path_uncounted_traffic`.
    public static let trafficIDs = Int(DIRECTOR_FAST_TRAFFIC_IDS)

    /// What the program forwarded for real server `id` (its statistics id), summed over CPUs:
    /// packets and IP bytes. Zero for an id the program does not count (`trafficIDs` and beyond).
    public func serverTraffic(_ id: UInt16) -> (packets: UInt64, bytes: UInt64) {
        traffic(id, in: serverTraffic)
    }

    /// The same for virtual service `id`.
    public func serviceTraffic(_ id: UInt16) -> (packets: UInt64, bytes: UInt64) {
        traffic(id, in: serviceTraffic)
    }

    private func traffic(_ id: UInt16, in map: Int32) -> (packets: UInt64, bytes: UInt64) {
        guard Int(id) < XDPFastPath.trafficIDs else { return (0, 0) }
        var key = UInt32(id)
        var perCPU = [director_fast_traffic](repeating: director_fast_traffic(), count: possibleCPUs)
        guard bpf_map_lookup_elem(map, &key, &perCPU) == 0 else { return (0, 0) }
        return perCPU.reduce(into: (packets: UInt64(0), bytes: UInt64(0))) { sum, cpu in
            sum.packets &+= cpu.packets
            sum.bytes &+= cpu.bytes
        }
    }

    /// The counters' names, in `counterValues`' order.
    public static let counterNames = [
        "fast_path_redirected", "fast_path_redirected_bytes", "fast_path_dropped_not_owned", "fast_path_passed_not_ipv4",
        "fast_path_passed_fragment", "fast_path_passed_other_protocol", "fast_path_passed_not_addressed",
        "fast_path_passed_control_segment", "fast_path_passed_no_flow", "fast_path_passed_stale_flow",
        "fast_path_passed_truncated", "fast_path_redirect_failed", "fast_path_passed_lease_expired",
        "fast_path_uncounted_traffic",
    ]

    // MARK: - Byte layout

    /// A MAC into one of the maps' six-byte fields, by the writer frames use.
    static func store(_ mac: MACAddress, in field: inout (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        withUnsafeMutableBytes(of: &field) { bytes in
            var span = bytes.mutableBytes
            span.storeMACAddress(mac, at: 0)
        }
    }

    static func key(of flow: FastPathFlow) -> director_fast_flow_key {
        var key = director_fast_flow_key()
        key.client_address = flow.clientAddress.rawValue.bigEndian
        key.virtual_address = flow.virtualAddress.rawValue.bigEndian
        key.client_port = flow.clientPort.bigEndian
        key.virtual_port = flow.virtualPort.bigEndian
        key.protocol = flow.transport.rawValue
        return key
    }

    static func check(_ result: Int32, _ context: String) throws(SystemCallError) {
        guard result == 0 else { throw XDPFastPath.failure(context, errno: -result) }
    }

    /// A failed bpf() call (through libbpf), with libbpf's own words when it had some: after a
    /// refused load, the verifier's log ends with why.
    public static func failure(_ context: String, errno: Int32) -> SystemCallError {
        let said = String(cString: director_fast_path_last_message())
        return SystemCallError(call: "bpf", context: said.isEmpty ? context : "\(context) (libbpf: \(said))", errno: errno)
    }
}

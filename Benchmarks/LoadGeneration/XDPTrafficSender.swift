import CFastPath
import DirectorWire
import Foundation
import PacketIO
import TrafficGeneratorProgram

/// The generator's XDP program (`traffic_generator.bpf.c`) loaded into the kernel for one plan of
/// established flows: the template frame it starts from is `FrameSynthesizer`'s, and the frames
/// it makes are the synthesizer's, byte for byte but the stamp's time.
public final class XDPTrafficProgram {
    public let plan: TrafficPlan
    private let object: OpaquePointer
    private let program: Int32
    private let configuration: Int32
    private let template: [UInt8]
    private var settings = director_generator_config()

    /// Loads the program; its frames go to interface `outputIndex` (of the caller's namespace).
    public init(plan: TrafficPlan, outputIndex: Int32) throws {
        guard plan.pattern == .established else {
            throw SystemCallError(call: "bpf", context: "the XDP generator sends established flows only, not \(plan.pattern.rawValue)", errno: EINVAL)
        }
        self.plan = plan
        var synthesizer = FrameSynthesizer(plan: plan)
        template = synthesizer.withFrame(0, time: 0) { $0.withUnsafeBytes { Array($0) } }
        director_fast_path_capture_libbpf_messages()
        let opened = TrafficGeneratorProgram.object.withUnsafeBytes { bytes in
            TrafficGeneratorProgram.programName.withCString { name in
                var options = bpf_object_open_opts()
                options.sz = MemoryLayout<bpf_object_open_opts>.size
                options.object_name = name
                return bpf_object__open_mem(bytes.baseAddress, bytes.count, &options)
            }
        }
        guard let opened else { throw XDPTrafficProgram.failure("opening the embedded generator program", errno: errno) }
        var cleanUp = true
        defer { if cleanUp { bpf_object__close(opened) } }
        let loaded = bpf_object__load(opened)
        guard loaded == 0 else { throw XDPTrafficProgram.failure("loading the generator program into the kernel", errno: -loaded) }
        configuration = bpf_object__find_map_fd_by_name(opened, "config")
        guard configuration >= 0 else { throw XDPTrafficProgram.failure("finding the generator's config map", errno: -configuration) }
        guard let found = bpf_object__find_program_by_name(opened, TrafficGeneratorProgram.programName) else {
            throw XDPTrafficProgram.failure("finding the generator program", errno: ENOENT)
        }
        program = bpf_program__fd(found)
        object = opened
        cleanUp = false

        settings.flows = UInt32(plan.flows)
        settings.first_client = plan.firstClient.rawValue
        settings.destination = plan.destination.rawValue
        settings.payload_length = UInt32(plan.effectiveFrameLength - plan.headerLength)
        settings.output_ifindex = UInt32(outputIndex)
        settings.first_port = TrafficPlan.firstPort
        settings.ports_per_address = UInt16(TrafficPlan.portsPerAddress)
    }

    deinit { bpf_object__close(object) }

    /// Sets the number of the next frame, and the stamp's clock to CLOCK_REALTIME as of now.
    public func start(at frame: UInt64) throws {
        settings.next_frame = frame
        settings.realtime_offset_ns = TrafficSender.nanoseconds(CLOCK_REALTIME) &- TrafficSender.nanoseconds(CLOCK_MONOTONIC)
        var zero: UInt32 = 0
        guard bpf_map_update_elem(configuration, &zero, &settings, UInt64(BPF_ANY)) == 0 else {
            throw XDPTrafficProgram.failure("writing the generator's plan", errno: errno)
        }
    }

    /// The number of the next frame, as the program has it.
    public func nextFrame() throws -> UInt64 {
        var zero: UInt32 = 0
        var current = director_generator_config()
        guard bpf_map_lookup_elem(configuration, &zero, &current) == 0 else {
            throw XDPTrafficProgram.failure("reading the generator's progress", errno: errno)
        }
        return current.next_frame
    }

    /// Has the kernel run the program `frames` times on live frames, each redirected to the output
    /// interface; returns the number of the next frame. A run cut short (a signal) made fewer.
    public func send(_ frames: Int) throws -> UInt64 {
        var options = bpf_test_run_opts()
        options.sz = MemoryLayout<bpf_test_run_opts>.size
        options.repeat = Int32(frames)
        options.flags = UInt32(BPF_F_TEST_XDP_LIVE_FRAMES)
        options.batch_size = UInt32(min(frames, 64))
        let result = template.withUnsafeBytes { input in
            options.data_in = input.baseAddress
            options.data_size_in = UInt32(input.count)
            return bpf_prog_test_run_opts(program, &options)
        }
        if result != 0 && -result != EINTR { throw XDPTrafficProgram.failure("running the generator program", errno: -result) }
        return try nextFrame()
    }

    /// Runs the program once on the template, not live: its action and the frame it made (the
    /// generator's own check against `FrameSynthesizer`).
    public func makeOne() throws -> (action: UInt32, frame: [UInt8]) {
        var output = [UInt8](repeating: 0, count: template.count + 256)
        var options = bpf_test_run_opts()
        options.sz = MemoryLayout<bpf_test_run_opts>.size
        options.repeat = 1
        let result = template.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                options.data_in = input.baseAddress
                options.data_size_in = UInt32(input.count)
                options.data_out = out.baseAddress
                options.data_size_out = UInt32(out.count)
                return bpf_prog_test_run_opts(program, &options)
            }
        }
        guard result == 0 else { throw XDPTrafficProgram.failure("running the generator program on the template", errno: -result) }
        return (options.retval, Array(output.prefix(Int(options.data_size_out))))
    }

    static func failure(_ context: String, errno: Int32) -> SystemCallError {
        let said = String(cString: director_fast_path_last_message())
        return SystemCallError(call: "bpf", context: said.isEmpty ? context : "\(context) (libbpf: \(said))", errno: errno)
    }
}

/// Sends a plan of established flows with `XDPTrafficProgram`: the kernel makes and sends each
/// frame, with no socket buffer and no copy, paced as `TrafficSender` paces its ring.
public struct XDPTrafficSender {
    public var pacing: TrafficSender

    public init(pacing: TrafficSender) { self.pacing = pacing }

    public func send(_ plan: TrafficPlan, on interface: NetworkInterface) throws -> GeneratorSummary {
        let program = try XDPTrafficProgram(plan: plan, outputIndex: interface.index)
        try program.start(at: pacing.startAt)
        // Bursts of 64 at a set rate: the device's veth queue holds 256 frames, and a frame from
        // XDP that finds it full is dropped, not held back as a packet socket's would be.
        let (sent, seconds) = try pacing.pace(burst: pacing.rate == 0 ? 4096 : 64) { sent, burstEnd in
            try program.send(Int(burstEnd - sent)) - pacing.startAt
        }
        return GeneratorSummary(frames: sent, seconds: seconds, ringFullWaits: 0)
    }
}

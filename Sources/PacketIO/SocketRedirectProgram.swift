import CDirectorShim
import CFastPath
#if canImport(Glibc)
import Glibc
#endif

/// The XDP program that feeds AF_XDP sockets (`XDPSocketRing`): every frame arriving on a receive
/// queue goes to the socket registered for that queue in an XSKMAP; with no socket there, to the
/// stack as if no program were attached. Six instructions, written out here rather than built by
/// the BPF compiler:
///
///     r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index))
///     r1 = the XSKMAP                         (a 64-bit load of the map's descriptor)
///     r3 = XDP_PASS                           (what bpf_redirect_map returns for an empty slot)
///     call bpf_redirect_map
///     exit
///
/// Attached through a BPF link, so the kernel detaches it when the process that made it exits.
/// With no socket registered it is also the cost of any XDP program on the interface: a frame
/// passed to the stack pays for the xdp_buff the driver made for it.
public final class SocketRedirectProgram {
    public let interface: NetworkInterface
    public let mode: XDPFastPath.AttachMode
    private let map: Int32
    private let program: Int32
    private let link: Int32

    public init(interface: NetworkInterface, queues: UInt32 = 1, mode: XDPFastPath.AttachMode = .driver) throws(SystemCallError) {
        self.interface = interface
        self.mode = mode
        let map = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "director_sockets", 4, 4, queues, nil)
        guard map >= 0 else { throw XDPFastPath.failure("creating the AF_XDP socket map", errno: -map) }
        var instructions = SocketRedirectProgram.instructions(socketMap: map)
        let program = instructions.withUnsafeMutableBufferPointer {
            bpf_prog_load(BPF_PROG_TYPE_XDP, "director_to_sockets", "Apache-2.0", $0.baseAddress, $0.count, nil)
        }
        guard program >= 0 else {
            close(map)
            throw XDPFastPath.failure("loading the program that feeds AF_XDP sockets", errno: -program)
        }
        var options = bpf_link_create_opts()
        options.sz = MemoryLayout<bpf_link_create_opts>.size
        options.flags = UInt32(mode == .driver ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE)
        let link = bpf_link_create(program, interface.index, BPF_XDP, &options)
        guard link >= 0 else {
            close(program)
            close(map)
            throw XDPFastPath.failure("attaching the program that feeds AF_XDP sockets to \(interface.name) (\(mode.rawValue) mode)", errno: -link)
        }
        self.map = map
        self.program = program
        self.link = link
    }

    deinit {
        close(link)
        close(program)
        close(map)
    }

    /// Frames arriving on `queue` go to `socket` (an AF_XDP socket bound to that queue) from now on.
    public func register(_ socket: Int32, queue: UInt32) throws(SystemCallError) {
        var key = queue, value = UInt32(bitPattern: socket)
        try XDPFastPath.check(bpf_map_update_elem(map, &key, &value, UInt64(BPF_ANY)), "registering an AF_XDP socket for queue \(queue)")
    }

    static func instructions(socketMap: Int32) -> [bpf_insn] {
        func instruction(_ code: Int32, destination: UInt8 = 0, source: UInt8 = 0, offset: Int16 = 0, immediate: Int32 = 0) -> bpf_insn {
            var instruction = bpf_insn()
            instruction.code = UInt8(code)
            instruction.dst_reg = destination
            instruction.src_reg = source
            instruction.off = offset
            instruction.imm = immediate
            return instruction
        }
        let queueOffset = Int16(MemoryLayout<xdp_md>.offset(of: \.rx_queue_index)!)
        return [
            instruction(BPF_LDX | BPF_MEM | BPF_W, destination: 2, source: 1, offset: queueOffset),
            instruction(BPF_LD | BPF_DW | BPF_IMM, destination: 1, source: UInt8(BPF_PSEUDO_MAP_FD), immediate: socketMap),
            instruction(0),  // the upper half of the 64-bit load
            instruction(BPF_ALU64 | BPF_MOV | BPF_K, destination: 3, immediate: Int32(XDP_PASS.rawValue)),
            instruction(BPF_JMP | BPF_CALL, immediate: Int32(BPF_FUNC_redirect_map.rawValue)),
            instruction(BPF_JMP | BPF_EXIT),
        ]
    }
}

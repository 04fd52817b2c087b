import DirectorCore
import PacketIO
#if canImport(Glibc)
import Glibc
#endif

extension Director {
    /// `fast_path: xdp`: loads and attaches the XDP program, and says which mode it runs in.
    /// Never fatal: without it the ring carries every frame, as with `fast_path: off`.
    func startFastPath() -> XDPFastPath? {
        guard configuration.fastPath.isOn else {
            Log.info("fast path: off (director.fast_path): the receive ring carries every frame")
            return nil
        }
        do {
            let program = try XDPFastPath(front: front, back: back, virtualMAC: virtualMAC, ownership: currentOwnership,
                                          flowCapacity: configuration.fastPathFlows,
                                          mode: configuration.fastPath == .xdpDriver ? .driver : configuration.fastPath == .xdpGeneric ? .generic : nil)
            let why = switch (program.mode, configuration.fastPath) {
            case (.driver, _): "in \(front.name)'s driver, before the kernel allocates a buffer"
            case (.generic, .xdpGeneric): "in generic mode, as configured"
            default: "in generic mode (\(front.name)'s driver has no XDP of its own), slower than driver mode"
            }
            Log.info("fast path: XDP \(why); established IPv4 direct-routing flows go straight to \(back.name), "
                + "everything else through the ring; map of \(configuration.fastPathFlows) flows")
            return program
        } catch {
            let hint = error.errno == EPERM ? " (the director needs CAP_BPF and CAP_NET_ADMIN for XDP)" : ""
            Log.warning("fast path: off, XDP is not available here: \(error)\(hint); the receive ring carries every frame")
            return nil
        }
    }

    /// The program handles the frames of the IPv4 VIPs the live services have now.
    func updateFastPathAddresses() {
        guard let fastPath else { return }
        let addresses = Set(live.withLock { $0.services.compactMap(\.address.v4) })
        do {
            try fastPath.setVirtualAddresses(addresses)
        } catch {
            Log.warning("fast path: \(error); frames for the VIPs not in the program's map go through the ring")
        }
    }

    /// Says when live servers or services have statistics ids the program does not count
    /// (at start and after each reload): their flows are still forwarded, but what the program
    /// carries for them reaches `services --stats` only as `fast_path_uncounted_traffic`.
    func warnOfUncountedFastPathTraffic() {
        guard fastPath != nil else { return }
        let beyond = live.withLock { $0.liveIDs(atOrAbove: XDPFastPath.trafficIDs) }
        guard beyond.servers + beyond.services > 0 else { return }
        Log.warning("fast path: \(beyond.servers) real servers and \(beyond.services) services have statistics ids of \(XDPFastPath.trafficIDs) or more "
            + "(ids are not reused while the director runs); the XDP program forwards their flows but counts them only as "
            + "fast_path_uncounted_traffic, so services --stats undercounts them; a restart numbers them afresh")
    }

    /// The program's counters, by reason, and its mode.
    func fastPathMetricFamilies() -> [MetricFamily] {
        guard let fastPath else { return [] }
        var mode = MetricFamily("director_fast_path_info", .gauge, "1, labelled with how the XDP fast path runs (driver or generic).")
        mode.add(1, [("mode", fastPath.mode?.rawValue ?? "loaded")])
        var frames = MetricFamily("director_fast_path_frames_total", .counter,
                                  "Frames the XDP fast path saw, by what it did: redirected to a real server, dropped (another dispatcher's bucket) or passed to the ring, and why.")
        var bytes = MetricFamily("director_fast_path_redirected_bytes_total", .counter, "Bytes of the frames the XDP fast path redirected.")
        for (name, value) in zip(XDPFastPath.counterNames, fastPath.counterValues()) {
            if name == "fast_path_redirected_bytes" {
                bytes.add(value)
            } else {
                frames.add(value, [("reason", String(name.dropFirst("fast_path_".count)))])
            }
        }
        var flushFailures = MetricFamily("director_fast_path_flush_failures_total", .counter,
                                         "Flushes of the XDP fast path's flows the kernel refused (the flows kept their offers).")
        flushFailures.add(fastPath.flushFailures.load(ordering: .relaxed))
        return [mode, frames, bytes, flushFailures]
    }
}

import Foundation

/// The comparison's figures: medians and ranges per offered rate and device, the ratios the
/// targets are stated in, what the sink checked, and the profile, as a table and a report.
struct ComparisonReport {
    let runs: [Trial.Result]
    let profiled: Trial.Result?
    let traffic: TrafficOptions
    let seconds: Double
    let repeats: Int
    var generator = GeneratorMethod.tpacket

    var rates: [Int] { Array(Set(runs.map(\.offeredRate))).sorted { ($0 == 0 ? Int.max : $0) < ($1 == 0 ? Int.max : $1) } }
    var devices: [DeviceKind] { DeviceKind.allCases.filter { kind in runs.contains { $0.device == kind.rawValue } } }

    func runs(_ device: DeviceKind, _ rate: Int) -> [Trial.Result] { runs.filter { $0.device == device.rawValue && $0.offeredRate == rate } }
    enum Measure {
        case cpuPerFrame, forwardedRate
        /// What a rate's ratios compare: CPU per frame at a fixed rate, the forwarded rate flat out.
        static func of(_ rate: Int) -> Measure { rate == 0 ? .forwardedRate : .cpuPerFrame }
    }

    func spread(_ measure: Measure, _ device: DeviceKind, _ rate: Int) -> Spread? {
        let values = runs(device, rate).map { measure == .cpuPerFrame ? $0.cpuNanosecondsPerFrame : $0.forwardedRate }
        return values.isEmpty ? nil : Spread(values)
    }

    static func rateName(_ rate: Int) -> String { rate == 0 ? "flat out" : "\(rate / 1000)k pps" }

    static func progressLine(_ result: Trial.Result, round: Int, of repeats: Int) -> String {
        String(format: "[%d/%d] %-9@ %-10@ in %7.0f/s  forwarded %7.0f/s (%llu dropped past the device)  loss %5.2f%%  CPU %.2f µs/frame (device CPU %.0f%% busy)%@",
               round, repeats, result.device as NSString, rateName(result.offeredRate) as NSString, result.inputRate, result.forwardedRate, result.droppedAtSinkSide,
               result.loss * 100, result.cpuNanosecondsPerFrame / 1000, result.deviceCPUBusy * 100,
               (result.sink.map { "  sink: \($0.frames) frames, \($0.violations) violations" } ?? "") as NSString)
    }

    /// A device's figure over a reference device's, from medians.
    func ratio(_ measure: Measure, _ rate: Int, of device: DeviceKind = .director, to reference: DeviceKind) -> Double? {
        guard let mine = spread(measure, device, rate), let theirs = spread(measure, reference, rate), theirs.median > 0 else { return nil }
        return mine.median / theirs.median
    }

    /// The directors in this run.
    var directors: [DeviceKind] { devices.filter(\.isDirector) }

    /// A device's median one-way delay quantile at a rate (µs), from the sink.
    func delay(_ device: DeviceKind, _ rate: Int, p99: Bool) -> Double? {
        let sinks = runs(device, rate).compactMap(\.sink)
        guard !sinks.isEmpty else { return nil }
        return Spread(sinks.map { Double((p99 ? $0.delayP99Microseconds : $0.delayP50Microseconds) ?? 0) }).median
    }

    var table: String {
        var lines = ["| offered | device | CPU µs per forwarded frame | forwarded kpps | input kpps | loss % | dropped past the device % | one-way delay p50 / p99 µs |",
                     "|---|---|---|---|---|---|---|---|"]
        for rate in rates {
            for device in devices {
                let set = runs(device, rate)
                guard !set.isEmpty else { continue }
                let delays = set.compactMap(\.sink)
                var delay = "–"
                if !delays.isEmpty {
                    let p50 = Spread(delays.map { Double($0.delayP50Microseconds ?? 0) }).median
                    let p99 = Spread(delays.map { Double($0.delayP99Microseconds ?? 0) }).median
                    delay = String(format: "%.0f / %.0f", p50, p99)
                }
                lines.append("| \(ComparisonReport.rateName(rate)) | \(device.title) | \(Spread(set.map(\.cpuNanosecondsPerFrame)).formatted(scale: 1e-3)) | "
                             + "\(Spread(set.map(\.forwardedRate)).formatted(scale: 1e-3, digits: 0)) | \(Spread(set.map(\.inputRate)).formatted(scale: 1e-3, digits: 0)) | "
                             + "\(Spread(set.map(\.loss)).formatted(scale: 100)) | \(Spread(set.map(\.pastDeviceShare)).formatted(scale: 100)) | \(delay) |")
            }
        }
        lines += ["", "| offered | measure | device | / nft fwd | / nft DNAT | / director (TPACKET_V3) |", "|---|---|---|---|---|---|"]
        for rate in rates {
            let measure = Measure.of(rate)
            let name = rate == 0 ? "forwarded pps" : "CPU per forwarded frame"
            func text(_ value: Double?) -> String { value.map { String(format: "%.2f×", $0) } ?? "–" }
            for device in directors {
                let againstDefault = device == .director ? nil : ratio(measure, rate, of: device, to: .director)
                lines.append("| \(ComparisonReport.rateName(rate)) | \(name) | \(device.title) | \(text(ratio(measure, rate, of: device, to: .nftablesForward))) | "
                             + "\(text(ratio(measure, rate, of: device, to: .nftablesDNAT))) | \(text(againstDefault)) |")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Why the run must count as failed (a device broke a rewrite rule or forwarded nothing), if it must.
    var failure: String? {
        for run in runs {
            if run.forwardedRate <= 0 { return "\(run.device) at \(ComparisonReport.rateName(run.offeredRate)) forwarded nothing" }
            if let sink = run.sink {
                if sink.violations > 0 {
                    return "\(run.device) at \(ComparisonReport.rateName(run.offeredRate)): the sink saw \(sink.misrouted) misrouted frames, "
                        + "\(sink.serverChanges) server changes, \(sink.duplicates) duplicates"
                }
                if sink.frames == 0 || sink.flowsSeen == 0 { return "\(run.device): the sink received nothing" }
            }
        }
        return nil
    }

    /// User-space nanoseconds per forwarded frame, from the profile's share of the device CPU.
    var userSpaceNanoseconds: Double? {
        guard let profiled, let profile = profiled.profile else { return nil }
        return profiled.cpuNanosecondsPerFrame * profile.userSpacePercent / 100
    }

    func targets() -> [String] {
        var lines: [String] = []
        func verdict(_ met: Bool, _ text: String) { lines.append("- \(met ? "met" : "**missed**"): \(text)") }
        for rate in rates where rate > 0 {
            for device in directors {
                if let value = ratio(.cpuPerFrame, rate, of: device, to: .nftablesForward) {
                    verdict(value <= 1.8, String(format: "%@: CPU per forwarded frame at %@ ≤ 1.8× nftables DR's: %.2f×", device.title,
                                                  ComparisonReport.rateName(rate), value))
                }
            }
            if let p99 = delay(.directorLowLatency, rate, p99: true), let p50 = delay(.directorLowLatency, rate, p99: false) {
                let reference = delay(.nftablesForward, rate, p99: true).map { String(format: " (nftables fwd's in the same run: %.0f µs)", $0) } ?? ""
                verdict(p99 <= 100, String(format: "%@: one-way delay p99 at %@ ≤ 100 µs: %.0f µs%@; its p50 %.0f µs", DeviceKind.directorLowLatency.title,
                                            ComparisonReport.rateName(rate), p99, reference, p50))
            }
            if rate >= 100_000, let extra = ratio(.cpuPerFrame, rate, of: .directorLowLatency, to: .director) {
                verdict(extra <= 1.1, String(format: "%@: CPU per frame at %@ at most 10 %% above the TPACKET_V3 ring's: %+.0f %%",
                                              DeviceKind.directorLowLatency.title, ComparisonReport.rateName(rate), (extra - 1) * 100))
            }
            if rate == 200_000, let value = ratio(.cpuPerFrame, rate, of: .directorXDP, to: .nftablesForward) {
                verdict(value <= 0.7, String(format: "%@: CPU per forwarded frame at %@ ≤ 0.7× nftables fwd's: %.2f×", DeviceKind.directorXDP.title,
                                              ComparisonReport.rateName(rate), value))
            }
            if rate == 200_000, let p99 = delay(.directorXDP, rate, p99: true) {
                verdict(p99 <= 50, String(format: "%@: one-way delay p99 at %@ ≤ 50 µs: %.0f µs", DeviceKind.directorXDP.title, ComparisonReport.rateName(rate), p99))
            }
            if rate == 200_000, let value = ratio(.cpuPerFrame, rate, of: .directorNAT, to: .nftablesDNAT) {
                verdict(value <= 1.0, String(format: "%@: CPU per forwarded frame at %@ ≤ 1.0× conntrack DNAT's: %.2f×", DeviceKind.directorNAT.title,
                                              ComparisonReport.rateName(rate), value))
            }
            if rate == 200_000 {
                for device in directors {
                    let loss = runs(device, rate).map(\.loss).max() ?? 0
                    verdict(loss == 0, String(format: "%@: no loss at 200k pps: %.3f %% at most", device.title, loss * 100))
                }
            }
        }
        if let value = ratio(.forwardedRate, 0, of: .directorNAT, to: .nftablesDNAT) {
            verdict(value >= 1.0, String(format: "%@: peak forwarded pps ≥ conntrack DNAT's: %.2f×", DeviceKind.directorNAT.title, value))
        }
        if let value = ratio(.forwardedRate, 0, of: .directorXDP, to: .nftablesForward) {
            verdict(value >= 1.5, String(format: "%@: peak forwarded pps ≥ 1.5× nftables fwd's: %.2f×", DeviceKind.directorXDP.title, value))
        }
        if let value = ratio(.forwardedRate, 0, to: .nftablesForward) {
            verdict(value >= 0.6, String(format: "peak forwarded pps ≥ 0.6× nftables DR's: %.2f×%@", value,
                                          value >= 0.6 ? "" : String(format: " (%.0f %% short)", (1 - value / 0.6) * 100)))
        }
        if let user = userSpaceNanoseconds {
            verdict(user <= 100, String(format: "user-space time per forwarded frame ≤ 100 ns: %.0f ns (%.1f %% of the device CPU's samples)",
                                        user, profiled?.profile?.userSpacePercent ?? 0))
        }
        return lines
    }

    func markdown() -> String {
        let plan = try? traffic.plan()
        var text = ResultsFolder.header("The director against the kernel's own forwarding") + """
        Topology: generator namespace → veth → device under test → veth → sink namespace, built anew for every run.
        The generator (\(generator.reportName)) and the sink run on CPU 0; the device's whole cost (veth NAPI receive, its
        forwarding, its transmit) is on CPU 1, whose busy time (wall time less idle, from /proc/stat) is divided by
        the frames the device sent out of its output interface. Traffic: \(traffic.pattern.rawValue), \(traffic.flows) flows,
        \(plan?.effectiveFrameLength ?? 0)-byte frames; two warm-up passes open every flow before the measured window of
        \(seconds) s. Devices and rates interleaved, \(repeats) repeats each; medians with (min–max). Every fixed-rate run is
        checked frame by frame by the sink, the warm-up's too; the one-way delay is the window's frames' (the warm-up's
        went through a director's ring, before its workers offered the flows to the fast path). The flat-out runs only
        count (a checking sink would take CPU 0 from the generator).

        Devices: **director** (DR, Maglev, one worker pinned to CPU 1, its default receive ring: TPACKET_V3, 1,024
        blocks of 32 KiB; TPACKET TX ring with a virtio header whose hdr_len is the frame length, the cheapest of the
        transmit methods measured: see the README, "Transmit"), the same **with a TPACKET_V2 receive ring** (each frame
        handed over as the kernel writes it), **nftables netdev fwd** (`ether daddr set jhash ip saddr . tcp sport
        mod 3 map { … } fwd to`, stateless DR), **nftables conntrack DNAT** (`dnat to jhash … map { … }` in prerouting,
        then routed; `nf_conntrack_tcp_be_liberal` because one-way traffic never opens a window), and, with
        `--baseline`, another build of the director with its own defaults.

        Reading the figures. Flat out, the generator offers more than the director can take: its input is what reached
        it, or what the generator sent if more (a frame that found the device's queue full is the device's loss too), and
        what it could not take is its loss. When the sink's side (CPU 0, shared with the generator)
        falls behind, veth drops the frames the device sends; those count as forwarded by the device (column "dropped
        past the device"); the director, whose transmit ring waits for the frames to be freed, drops instead (counted
        as its loss, `drop_transmit_ring_full`). The director's one-way delay with TPACKET_V3 is its receive ring's: a
        block reaches user space when full or when its retire timer (1 ms, the smallest the kernel takes) fires, and at
        these rates the timer comes first; TPACKET_V2 hands each frame over at once. Every device's p99 includes what
        the machine adds: the sink's side on CPU 0 and, on a virtual machine, the hypervisor's steal time (its
        vCPUs held for up to tens of milliseconds); compare the directors' delays with nftables' in the same run.

        ## Results

        \(table)

        ![CPU per forwarded frame and peak rate](compare.svg)

        ## Targets

        \(targets().joined(separator: "\n"))

        ## What the sink checked


        """
        let checked = runs.compactMap(\.sink)
        let total = checked.reduce(into: (frames: UInt64(0), misrouted: UInt64(0), changes: UInt64(0), duplicates: UInt64(0), late: UInt64(0), oversized: UInt64(0), foreign: UInt64(0))) {
            $0.frames += $1.frames; $0.misrouted += $1.misrouted; $0.changes += $1.serverChanges
            $0.duplicates += $1.duplicates; $0.late += $1.late; $0.oversized += $1.oversized; $0.foreign += $1.foreign
        }
        text += "\(checked.count) runs, \(total.frames) frames checked: \(total.misrouted) misrouted, \(total.changes) flows moved to another real server, "
            + "\(total.duplicates) duplicates, \(total.late) late, \(total.oversized) merged by GRO, \(total.foreign) not of the plan.\n\n"
        text += "| device | flows per real server (first run) | frames per real server (first run) |\n|---|---|---|\n"
        for device in devices {
            if let sink = runs.first(where: { $0.device == device.rawValue && $0.sink != nil })?.sink {
                text += "| \(device.title) | \(sink.flowsPerServer.map(String.init).joined(separator: " / ")) | \(sink.framesPerServer.map(String.init).joined(separator: " / ")) |\n"
            }
        }
        if let profiled, let profile = profiled.profile {
            text += """

            ## Where the director's CPU goes

            perf (cpu-clock) on CPU 1 during one extra run of the \(DeviceKind(rawValue: profiled.device)?.title ?? profiled.device) at \(ComparisonReport.rateName(profiled.offeredRate)) \
            (\(String(format: "%.2f", profiled.cpuNanosecondsPerFrame / 1000)) µs per forwarded frame): \
            \(String(format: "%.1f", profile.userSpacePercent)) % of the samples are in user space, \
            about \(String(format: "%.0f", userSpaceNanoseconds ?? 0)) ns per frame; the rest is the kernel.

            | share | object | symbol |
            |---|---|---|

            """
            for entry in profile.entries.prefix(25) {
                text += "| \(String(format: "%.1f", entry.percent)) % | \(entry.object) | `\(entry.symbol.replacingOccurrences(of: "|", with: "\\|"))` |\n"
            }
        }
        return text
    }

    func write(to folder: String) throws {
        try ResultsFolder(path: folder).write("compare", markdown: markdown(), raw: runs + (profiled.map { [$0] } ?? []))
        try chart().write(toFile: folder + "/compare.svg", atomically: true, encoding: .utf8)
    }

    /// Two panels of bars with min–max whiskers: CPU per forwarded frame at each fixed rate, and
    /// the flat-out forwarded rate.
    func chart() -> String {
        var chart = BarChart(title: "director vs nftables, \(traffic.flows) flows, medians of \(repeats) (whiskers: min–max)",
                             series: devices.map(\.title))
        let fixed = rates.filter { $0 > 0 }
        if !fixed.isEmpty {
            chart.addPanel(title: "CPU µs per forwarded frame (lower is better)",
                           groups: fixed.map { rate in (ComparisonReport.rateName(rate), devices.map { spread(.cpuPerFrame, $0, rate).map { Spread(scaled: $0, by: 1e-3) } }) })
        }
        if rates.contains(0) {
            chart.addPanel(title: "peak forwarded kpps (higher is better)",
                           groups: [("flat out", devices.map { spread(.forwardedRate, $0, 0).map { Spread(scaled: $0, by: 1e-3) } })])
        }
        return chart.svg()
    }
}

extension Spread {
    init(scaled spread: Spread, by factor: Double) {
        self = spread
        median *= factor
        minimum *= factor
        maximum *= factor
    }
}

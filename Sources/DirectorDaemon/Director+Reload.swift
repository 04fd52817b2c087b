import DirectorCore
import Foundation

extension Director {
    /// Re-reads the config file (`director reload`, SIGHUP) and applies what may change while
    /// the director runs: the services, their real servers, weights and schedulers, and the
    /// timeouts. Every setting under `director:` needs a restart; a file that changes one is
    /// refused, naming them, and so is a file `check-config` would refuse, with its message. A
    /// refused reload changes nothing. Connections keep their real servers (entries name them by
    /// a stable id); a removed server's connections go on to it until they end.
    public func reload() -> String {
        reloadLock.withLock { _ in
            systemd.reloading()
            defer { systemd.ready() }
            return reloadUnderLock()
        }
    }

    private func reloadUnderLock() -> String {
        guard let path = configurationPath else { return refuse("reload: the director was started without a config file to re-read") }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return refuse("reload: cannot read config file \(path)") }
        let new: Configuration
        do {
            new = try ConfigurationParser.parse(yaml: text)
        } catch {
            return refuse("reload: \(path): \(error)")
        }
        let fixed = Director.settingsNeedingRestart(from: configuration, to: new)
        guard fixed.isEmpty else {
            return refuse("reload: \(path) changes \(fixed.joined(separator: ", ")), which cannot change while the director runs (restart it for "
                + (fixed.count == 1 ? "that" : "those") + "); nothing was changed")
        }
        return apply(services: new.services, timeouts: new.timeouts, notifyCommand: new.notifyCommand, source: "reload of \(path)")
    }

    /// Makes `services` and `timeouts` the live ones and hands the workers the new snapshot;
    /// `source` (a reload, a command) names the change in the log and the reply. Changes nothing
    /// if a step before the snapshot fails.
    func apply(services: [Configuration.ServiceConfig], timeouts: ConnectionTimeouts, notifyCommand: [String]?? = .none,
               source: String) -> String {
        let addresses = LiveServices.virtualAddresses(services)
        if let guardNow = hostGuard, guardNow.virtualAddresses != addresses {
            // Before the workers forward a new VIP, the host's stack must stop seeing its frames.
            let updated = HostStackGuard(interface: guardNow.interface, virtualAddresses: addresses, gateway: guardNow.gateway)
            do {
                try updated.install()
            } catch {
                return refuse("\(source): \(error); nothing was changed")
            }
            hostGuard = updated
        }
        var summary: ReloadSummary
        do {
            summary = try live.withLock { live throws(ConfigurationError) in try live.replace(services: services, timeouts: timeouts) }
        } catch {
            return refuse("\(source): \(error); nothing was changed")
        }
        // A reload's notify command (a live change leaves it alone).
        if case .some(let command) = notifyCommand, notifier.use(command) { summary.notifyChanged = true }
        resolveRealServers(onlyMissing: true)
        publishServices()
        refreshHealthChecks()
        Log.info("\(source): \(summary)")
        warnOfUncountedFastPathTraffic()
        return "\(source): \(summary)\n"
    }

    private func refuse(_ problem: String) -> String {
        Log.error("refused: \(problem)")
        return "error: refused: \(problem)\n"
    }

    /// The `director:` settings that differ between `old` and `new`, by their names in the file.
    static func settingsNeedingRestart(from old: Configuration, to new: Configuration) -> [String] {
        var changed: [String] = []
        func check(_ name: String, _ same: Bool) { if !same { changed.append("director.\(name)") } }
        check("front_interface", old.frontInterface == new.frontInterface)
        check("back_interface", old.backInterface == new.backInterface)
        check("workers", old.workerCPUs == new.workerCPUs)
        check("connection_capacity", old.connectionCapacity == new.connectionCapacity)
        check("control_socket", old.controlSocket == new.controlSocket)
        check("hide_frames_from_host", old.hidesFramesFromHost == new.hidesFramesFromHost)
        check("virtual_mac", old.virtualMAC == new.virtualMAC)
        check("answer_arp", old.answersARP == new.answersARP)
        check("bucket_count", old.bucketCount == new.bucketCount)
        check("node_id", old.nodeID == new.nodeID)
        check("peer", old.peer == new.peer)
        check("buckets", old.initialOwnership == new.initialOwnership)
        check("receive_ring", old.receiveRing == new.receiveRing)
        check("allow_fault_injection", old.allowsFaultInjection == new.allowsFaultInjection)
        check("metrics_listen", old.metricsListen == new.metricsListen)
        check("lock_memory", old.locksMemory == new.locksMemory)
        check("fast_path", old.fastPath == new.fastPath)
        check("fast_path_flows", old.fastPathFlows == new.fastPathFlows)
        return changed
    }
}

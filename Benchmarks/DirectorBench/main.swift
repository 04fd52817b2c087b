import ArgumentParser

/// The load-generator benchmark: a generator and a sink that run inside lab namespaces, and the
/// runs that build a performance lab and measure the director against the kernel's forwarding.
struct DirectorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "director-bench",
        abstract: "The director's load-generator benchmark: generator, sink, and side-by-side runs against nftables.",
        subcommands: [Compare.self, Rings.self, Scale.self, NewConnections.self, Failover.self, Stall.self, TableFlood.self, Generate.self, Sink.self, Receive.self])
}

DirectorBench.main()

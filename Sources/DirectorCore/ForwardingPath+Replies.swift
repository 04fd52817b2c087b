import DirectorWire

// ICMP errors about a connection, and the NAT replies of the back interface.
extension ForwardingPath {
    /// An ICMP error about a packet the VIP sent a client (a router on the way could not deliver
    /// it, or it was too big for the next hop; for IPv6, whose routers never fragment, "packet
    /// too big" is the only path MTU signal): it goes to the real server of the connection, so
    /// the server's stack hears of it (path MTU discovery goes on working). Translated for NAT;
    /// as it came for direct routing, whose servers sent the packet from the VIP themselves.
    @inlinable mutating func relayToServer<Error: QuotedFlowError>(_ error: Error, in table: inout ConnectionTable<Error.Address>,
                                                                   _ frame: inout MutableRawSpan) -> Verdict {
        guard error.destinationMAC == settings.virtualMAC else { return drop(.notAddressedToDirector) }
        guard let serviceIndex = Error.Address.findService(in: services, address: error.quotedSource, port: error.quotedSourcePort,
                                                           transport: error.quotedTransport) else {
            return drop(.noVirtualService)
        }
        let key = FlowKey(clientAddress: error.quotedDestination, clientPort: error.quotedDestinationPort, virtualAddress: error.quotedSource,
                          virtualPort: error.quotedSourcePort, transport: error.quotedTransport)
        guard let slot = table.find(key, hash: key.tableHash) else { return drop(.icmpErrorWithoutConnection) }
        let realServerID = table[slot].realServerID
        let destination = services.destinationMAC(realServerID)
        guard destination != .zero else { return drop(.realServerUnresolved) }
        DirectRouting.rewrite(&frame, to: destination, from: settings.backMAC)
        if services.translates(serviceIndex) {
            let server = Error.Address.translatedDestination(in: services, of: realServerID)
            error.translateQuotedSource(of: &frame, to: server.address, port: server.port)
        }
        counters[.icmpErrorsRelayed] &+= 1
        return .transmitOnBack(length: frame.byteCount, checksum: TransportChecksum(
            start: error.icmpOffset, fieldOffset: ICMPHeader.checksumOffset, end: error.networkOffset + error.packetLength))
    }

    /// A real server's reply to a client of a NAT service, sent to the gateway MAC: it leaves by
    /// the front as VIP:port, if it belongs to a connection of this worker's.
    @inlinable mutating func translateReply<Flow: NetworkFlow>(_ flow: Flow, in table: inout ConnectionTable<Flow.Address>,
                                                               _ frame: inout MutableRawSpan, now: UInt64, checksumPending: Bool) -> Verdict {
        guard let gateway = settings.gateway, flow.destinationMAC == gateway.mac else { return drop(.notAddressedToDirector) }
        guard let source = Flow.Address.findReplySource(in: services, address: flow.source, port: flow.sourcePort, transport: flow.transport) else {
            return drop(.replyNotFromTranslatedServer)
        }
        let service = Flow.Address.virtualEndpoint(in: services, ofService: source.service)
        let key = FlowKey(clientAddress: flow.destination, clientPort: flow.destinationPort, virtualAddress: service.address,
                          virtualPort: service.port, transport: flow.transport)
        // The same client port may since have been scheduled to another server: that server's
        // connection is not this reply's.
        guard let slot = table.find(key, hash: key.tableHash), table[slot].realServerID == source.server else {
            return drop(.replyWithoutConnection)
        }
        guard clientSideMAC != .zero else { return drop(.clientNextHopUnknown) }
        // The peer's flow, answered here first: it is this worker's now (its client's next frame
        // would say the same).
        if table[slot].isReplica { takeOver(slot: slot, in: &table, now: now, from: clientSideMAC) }
        // The traffic counters count what comes in from clients (ipvsadm's InPkts); a reply is
        // counted as forwarded only (`replies_forwarded`).
        DirectRouting.rewrite(&frame, to: clientSideMAC, from: settings.virtualMAC)
        flow.translateSource(of: &frame, to: service.address, port: service.port, checksumPending: checksumPending)
        return .transmitOnFront(length: frame.byteCount, checksum: flow.transportChecksum)
    }

    /// An ICMP error from the back about a packet of a NAT connection the director sent to its
    /// real server (the server's port is closed, the packet did not fit a link): it goes to the
    /// client as if about its packet to VIP:port, from the VIP.
    @inlinable mutating func relayToClient<Error: QuotedFlowError>(_ error: Error, in table: inout ConnectionTable<Error.Address>,
                                                                   _ frame: inout MutableRawSpan) -> Verdict {
        guard let gateway = settings.gateway, error.destinationMAC == gateway.mac else { return drop(.notAddressedToDirector) }
        // The quoted packet went from the client to the server's address and port.
        guard let source = Error.Address.findReplySource(in: services, address: error.quotedDestination, port: error.quotedDestinationPort,
                                                         transport: error.quotedTransport) else {
            return drop(.replyNotFromTranslatedServer)
        }
        let service = Error.Address.virtualEndpoint(in: services, ofService: source.service)
        let key = FlowKey(clientAddress: error.quotedSource, clientPort: error.quotedSourcePort, virtualAddress: service.address,
                          virtualPort: service.port, transport: error.quotedTransport)
        guard let slot = table.find(key, hash: key.tableHash), table[slot].realServerID == source.server else {
            return drop(.icmpErrorWithoutConnection)
        }
        guard clientSideMAC != .zero else { return drop(.clientNextHopUnknown) }
        DirectRouting.rewrite(&frame, to: clientSideMAC, from: settings.virtualMAC)
        error.translateQuotedDestination(of: &frame, to: service.address, port: service.port)
        counters[.icmpErrorsRelayed] &+= 1
        return .transmitOnFront(length: frame.byteCount, checksum: TransportChecksum(
            start: error.icmpOffset, fieldOffset: ICMPHeader.checksumOffset, end: error.networkOffset + error.packetLength))
    }

    /// ARP on the back segment: answer "who has the gateway?" with the gateway MAC (the duty
    /// moves with the VIP's, so one director of a pair answers).
    @inlinable mutating func answerForGateway(_ message: ARPMessage, _ frame: inout MutableRawSpan) -> Verdict {
        guard message.operation == .request, settings.answersARP, let gateway = settings.gateway,
              message.targetAddress == gateway.address else {
            return drop(.arpNotForVirtualAddress)
        }
        return reply(to: message, &frame, from: gateway.mac)
    }

    /// Neighbor Discovery on the back segment: the IPv6 form of the ARP answer for the gateway.
    @inlinable mutating func answerForGateway(_ solicitation: NeighborSolicitation, _ frame: inout MutableRawSpan) -> Verdict {
        guard settings.answersARP, let gateway = settings.gateway, let address = gateway.address6, solicitation.target == address else {
            return drop(.neighborSolicitationNotForVirtualAddress)
        }
        return advertise(solicitation, &frame, from: gateway.mac)
    }
}

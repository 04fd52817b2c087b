import CDirectorShim
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The HTTP side of observation (`director.metrics_listen`): `/metrics` for Prometheus, the
/// status page at `/` and its data at `/status.json`. Served by swift-nio on one event-loop
/// thread of its own, kept off the workers' CPUs when the host has others; nothing here needs
/// root, and a scraper needs no account on the host.
///
/// Read-only and unauthenticated, like node_exporter: listen on loopback or a management
/// network. At most `connectionLimit` connections are open at once; each is closed after
/// `idleTimeout` without a byte, after `connectionLifetime` whatever it does, and after
/// `requestsPerConnection` requests, so slow or idle clients cannot hold the slots for long. A
/// connection whose client does not read its answers is not read from either (no answer is made
/// until the last one has left), so the memory one client can make the director hold is one
/// answer.
final class MetricsServer: Sendable {
    static let connectionLimit = 64
    static let idleTimeout = TimeAmount.seconds(10)
    static let connectionLifetime = TimeAmount.seconds(60)
    static let requestsPerConnection = 1000

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: String

        static func text(_ status: HTTPResponseStatus, _ body: String) -> Response {
            Response(status: status, contentType: "text/plain; charset=utf-8", body: body)
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    let localPort: Int

    /// Binds and starts serving; `route` answers a GET or HEAD for a path (on the server's thread).
    init(listen: Configuration.ListenAddress, cpu: Int?, route: @escaping @Sendable (String) -> Response) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let cpu {
            group.next().execute { _ = director_pin_current_thread(Int32(cpu)) }
        }
        let open = Atomic<Int>(0)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard open.add(1, ordering: .relaxed).newValue <= MetricsServer.connectionLimit else {
                    open.subtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.subtract(1, ordering: .relaxed) }
                let lifetime = channel.eventLoop.scheduleTask(in: MetricsServer.connectionLifetime) { channel.close(promise: nil) }
                channel.closeFuture.whenComplete { _ in lifetime.cancel() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: MetricsServer.idleTimeout))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsRequestHandler(route: route))
                }
            }
        do {
            channel = try bootstrap.bind(host: "\(listen.address)", port: Int(listen.port)).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsServerError(description: "cannot listen for metrics on \(listen): \(error)")
        }
        self.group = group
        localPort = channel.localAddress?.port ?? Int(listen.port)
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

struct MetricsServerError: Error, CustomStringConvertible {
    let description: String
}

/// One HTTP/1.1 connection: GET and HEAD answered by the route, everything else refused;
/// request bodies are read and dropped. While the channel cannot take more output (the client
/// is not reading its answers), the next answer waits, and so does every request behind it
/// (the pipelining handler hands over one request at a time), and nothing more is read.
private final class MetricsRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: @Sendable (String) -> MetricsServer.Response
    private var request: HTTPRequestHead?
    private var answered = 0
    private var readPending = false
    /// A request whose answer waits for the channel to drain.
    private var waiting: HTTPRequestHead?
    /// The last answer said `Connection: close`: requests queued behind it get none.
    private var closing = false

    init(route: @escaping @Sendable (String) -> MetricsServer.Response) {
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request, !closing else { return }
            request = nil
            if context.channel.isWritable { respond(to: head, context: context) } else { waiting = head }
        }
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable { context.read() } else { readPending = true }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let head = waiting {
            waiting = nil
            respond(to: head, context: context)
        }
        if context.channel.isWritable, readPending {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let response: MetricsServer.Response
        switch head.method {
        case .GET, .HEAD:
            let path = String(head.uri.prefix { $0 != "?" })
            response = route(path)
        default:
            response = .text(.methodNotAllowed, "only GET and HEAD\n")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        if response.status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        let body = context.channel.allocator.buffer(string: response.body)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        answered += 1
        let keepAlive = head.isKeepAlive && answered < MetricsServer.requestsPerConnection
        closing = !keepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}

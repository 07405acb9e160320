import DistillCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// distilld: the listeners and background services of one `DistillSystem` in one ServiceGroup.
public enum Daemon {
    /// Runs until SIGTERM or SIGINT: then stops accepting, lets in-flight requests finish (for at
    /// most `server.shutdown_grace_seconds`), closes the store and returns.
    ///
    /// Each listener announces itself on stdout once it accepts connections, as
    /// `distilld listening on http://HOST:PORT` or `distilld listening on unix:PATH`.
    public static func run(config: DistillConfig, environment: [String: String], logger: Logger) async throws {
        let system: DistillSystem
        do {
            system = try await DistillSystem.open(config: config, environment: environment, logger: logger)
        } catch {
            throw DaemonError.system(error)
        }
        let listeners = Listeners()
        // The group shuts services down in reverse order: the listeners stop before the
        // background services that flush what the requests left.
        var services: [any Service] = system.services
        if let http = config.server.http {
            services.append(
                ListenerService(
                    address: "http://\(http)",
                    application: buildApplication(system: system, listener: .tcp(http), listeners: listeners, logger: logger)))
        }
        if let socket = config.server.socket {
            try UnixSocket.prepare(path: socket)
            services.append(
                ListenerService(
                    address: "unix:\(socket)",
                    application: buildApplication(system: system, listener: .unix(socket), listeners: listeners, logger: logger)))
        }

        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(config.server.shutdownGraceSeconds)
        groupConfiguration.maximumCancellationDuration = .seconds(5)
        do {
            try await ServiceGroup(configuration: groupConfiguration).run()
        } catch {
            await system.shutdown(logger: logger)
            throw error
        }
        logger.info("listeners stopped; closing the store")
        await system.shutdown(logger: logger)
        if let socket = config.server.socket { unlink(socket) }
    }
}

/// A listener's application, whose failure to bind says which address it could not have.
private struct ListenerService<Application: ApplicationProtocol>: Service {
    let address: String
    let application: Application

    func run() async throws {
        do {
            try await application.run()
        } catch let error as IOError {
            throw DaemonError.listen(address: address, reason: String(cString: strerror(error.errnoCode)).lowercased())
        } catch let error as SocketAddressError {
            throw DaemonError.listen(address: address, reason: "\(error)")
        }
    }
}

/// Where an application listens, and so which admin API it serves: all of it on the Unix socket,
/// on TCP only with `admin.token`.
public enum Listener: Sendable {
    case tcp(DistillConfig.HostPort)
    case unix(String)
}

/// The HTTP application of one listener: the routes over `system`, with distilld's server settings.
/// Each listener announces itself on stdout once it accepts connections, as
/// `distilld listening on http://HOST:PORT` or `distilld listening on unix:PATH`.
public func buildApplication(
    system: DistillSystem, listener: Listener, listeners: Listeners, logger: Logger
) -> some ApplicationProtocol {
    let config = system.config
    let address: BindAddress
    let admin: AdminAccess
    switch listener {
    case .tcp(let http):
        address = .hostname(http.host, port: http.port)
        admin = config.admin.token.map { .bearer(token: $0) } ?? .none
    case .unix(let path):
        address = .unixDomainSocket(path: path)
        admin = .socket
    }
    let access = ClientAccess(server: config.server)
    let serverName = "distilld"
    return Application(
        router: buildRouter(system: system, listeners: listeners, admin: admin, access: access),
        server: httpServer(
            config.server, metrics: system.metrics,
            heldExactHits: ExactHitShortcut.heldExactHits(
                completions: system.completions, access: access, metrics: system.metrics, serverName: serverName)),
        configuration: .init(
            address: address, serverName: serverName,
            availableConnectionsDelegate: MaximumAvailableConnections(config.server.maxConnections)),
        onServerRunning: { channel in
            switch listener {
            case .tcp(let http):
                let port = channel.localAddress?.port ?? http.port
                announce("http://\(DistillConfig.HostPort(host: http.host, port: port))", listeners, logger)
            case .unix(let path):
                do {
                    try UnixSocket.restrict(path: path)
                    announce("unix:\(path)", listeners, logger)
                } catch {
                    logger.critical("\(error)")
                }
            }
        },
        logger: logger)
}

/// HTTP/1.1 with the request deadlines of `RequestGuard`, and exact hits held in memory answered
/// by `ExactHitShortcut`. Hummingbird's idle timeout is off: it counts only the requests that reach
/// Hummingbird, so it would close a connection the shortcut keeps busy; `RequestGuard` closes an
/// idle connection instead (no head within `server.header_timeout_seconds` of the last response),
/// whether or not its client reads that response.
private func httpServer(
    _ server: DistillConfig.Server, metrics: DistillMetrics,
    heldExactHits: @escaping @Sendable (HTTPRequest, ByteBuffer) -> (head: HTTPResponse, body: ByteBuffer)?
) -> HTTPServerBuilder {
    let refused = { @Sendable (code: String) in metrics.recordRefusal(code: code) }
    let bodyCap = ExactHitShortcut.bodyCap(maxBodyBytes: server.maxBodyBytes)
    return .http1(
        configuration: .init(
            additionalChannelHandlers: [
                RequestGuard(
                    headerTimeout: .nanoseconds(Int64(server.headerTimeoutSeconds * 1e9)),
                    bodyTimeout: .nanoseconds(Int64(server.bodyTimeoutSeconds * 1e9)), refused: refused),
                ExactHitShortcut(bodyCap: bodyCap, answer: heldExactHits),
            ],
            idleTimeout: nil))
}

private func announce(_ address: String, _ listeners: Listeners, _ logger: Logger) {
    listeners.add(address)
    logger.info("listening on \(address)")
    // Unbuffered, so that a supervisor or a test reading the pipe sees it at once.
    FileHandle.standardOutput.write(Data("distilld listening on \(address)\n".utf8))
}

public enum DaemonError: Error, CustomStringConvertible {
    case socket(path: String, reason: String)
    case listen(address: String, reason: String)
    case system(SystemError)

    public var description: String {
        switch self {
        case .socket(let path, let reason): "cannot listen on the Unix socket \(path): \(reason)"
        case .listen(let address, let reason): "cannot listen on \(address): \(reason)"
        case .system(let error): "\(error)"
        }
    }
}

import DistillAPI
import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// A failed teacher call's warning names the teacher's address, whatever the failure: an operator
/// with several upstreams must see which one timed out.
@Suite struct TeacherFailureLogTests {
    @Test func aTimeoutNamesTheTeachersAddress() async throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let capture = LogCapture()
        let logger = Logger(label: "distilld") { _ in CapturingHandler(capture: capture) }
        try await RoutesTests().withApp(
            admin: false, logger: logger,
            configure: {
                $0.teacher.baseURL = "http://127.0.0.1:\(silent.port)/v1"
                $0.teacher.readTimeoutSeconds = 0.2
            }
        ) { client, _, _ in
            let body = #"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .gatewayTimeout)
            }
        }
        let failures = capture.lines.filter { $0.contains("teacher call failed") }
        #expect(failures.count == 1, "\(capture.lines)")
        #expect(failures.allSatisfy { $0.contains("distill.outcome=timeout") && $0.contains("distill.teacher=127.0.0.1:\(silent.port)") })
    }
}

/// A TCP port that accepts connections into its backlog and never answers.
struct SilentListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && listen(descriptor, 8) == 0
                    && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(descriptor)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(descriptor) }
}

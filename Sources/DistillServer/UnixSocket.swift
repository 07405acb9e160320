import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Preparing the path of distilld's Unix socket.
enum UnixSocket {
    /// Makes `path` ready to bind: creates its directory (0700) if missing, and removes a socket
    /// file left behind by a daemon that died. A socket someone still listens on is an error.
    static func prepare(path: String) throws(DaemonError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .socket(path: path, reason: "cannot create \(directory): \(error.localizedDescription)")
            }
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw .socket(path: path, reason: "it exists and is not a socket")
        }
        guard !isListening(path) else {
            throw .socket(path: path, reason: "another process is listening on it")
        }
        unlink(path)
    }

    /// Makes the socket reachable by its owner only: the admin API has no other guard.
    static func restrict(path: String) throws(DaemonError) {
        guard chmod(path, 0o600) == 0 else {
            throw .socket(path: path, reason: "cannot set mode 0600: \(String(cString: strerror(errno)))")
        }
    }

    private static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8.prefix(buffer.count - 1))
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}

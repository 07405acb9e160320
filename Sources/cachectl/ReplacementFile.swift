import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A file written beside its destination (`PATH.partial`) and renamed over it only once complete
/// and synced: the destination never holds a partial copy, and a failure leaves what was there.
/// Mode 0600: exports and backups hold prompts and answers.
struct ReplacementFile {
    let path: String
    let partial: String
    let handle: FileHandle

    /// Creates `PATH.partial`, replacing one a failed run left.
    private init(replacing path: String) throws {
        self.path = path
        partial = path + ".partial"
        unlink(partial)
        let descriptor = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CachectlError("cannot create \(partial): \(String(cString: strerror(errno)))") }
        handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    /// Runs `body` on a new file and puts it in place of `path` if `body` succeeds; otherwise
    /// removes it and rethrows.
    static func write<T>(_ path: String, _ body: (ReplacementFile) async throws -> T) async throws -> T {
        let file = try ReplacementFile(replacing: path)
        do {
            let result = try await body(file)
            try file.commit()
            return result
        } catch {
            try? file.handle.close()
            unlink(file.partial)
            throw error
        }
    }

    private func commit() throws {
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw CachectlError("cannot write \(partial): \(error.localizedDescription)")
        }
        guard rename(partial, path) == 0 else {
            throw CachectlError("cannot rename \(partial) to \(path): \(String(cString: strerror(errno)))")
        }
        // Makes the rename itself durable.
        let parent = (path as NSString).deletingLastPathComponent
        let directory = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY)
        guard directory >= 0 else { return }
        fsync(directory)
        close(directory)
    }
}

import Logging

extension DistillRequestContext {
    /// One info line per admin action that changes something: what was done, to what, and by
    /// which request. Scopes, ids and counts only: never a prompt, an answer or a key.
    func logAdminAction(_ action: String, _ metadata: Logger.Metadata) {
        logger.info("admin: \(action)", metadata: metadata.merging(["distill.request_id": "\(requestID)"]) { $1 })
    }
}

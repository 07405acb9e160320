import DistillAPI
import DistillCore
import Foundation
import Hummingbird
import Storage

/// `/admin/student…` and `/admin/distill…`: the students and their re-distillation (on the Unix
/// socket only).
func addStudentRoutes(to router: Router<DistillRequestContext>, system: DistillSystem) {
    /// The students and the distiller; a 409 when students are disabled.
    @Sendable func enabled() throws(APIError) -> (students: Students, distiller: Distiller) {
        guard let students = system.students, let distiller = system.distiller else {
            throw APIError(status: 409, type: "invalid_request_error", code: "student_disabled", message: "Students are disabled (student.enabled).")
        }
        return (students, distiller)
    }

    /// A scope key, or an unambiguous prefix of a scope with teacher answers.
    @Sendable func resolveScope(_ prefix: String) async throws -> String {
        try await enabled().students.resolveScope(prefix)
    }

    router.get(APIPath.student.route) { _, _ -> Response in
        var status = try enabled().students.status()
        for index in status.scopes.indices {
            status.scopes[index].description = await system.completions.scopes.description(of: status.scopes[index].scope)
        }
        return jsonResponse(status)
    }

    router.get(APIPath.studentVersions.route) { request, _ -> Response in
        _ = try enabled()
        var scope: String?
        if let prefix = request.uri.queryParameters["scope"] { scope = try await resolveScope(String(prefix)) }
        let versions = try await enabled().students.versions(scope: scope)
        return jsonResponse(versions.map(info))
    }

    router.post(APIPath.studentPromote.route) { request, context -> Response in
        guard let id = context.parameters.get("id", as: Int64.self) else {
            throw APIError.invalidRequest("The version id must be an integer.", code: "invalid_value", param: "id")
        }
        let force = request.uri.queryParameters["force"] == "true"
        let promoted = try await enabled().students.promote(version: id, force: force)
        context.logAdminAction(
            "student version promoted", ["distill.scope": "\(promoted.scope)", "distill.version": "\(id)", "distill.force": "\(force)"])
        return jsonResponse(info(promoted))
    }

    router.put(APIPath.studentScope.route) { request, context -> Response in
        let students = try enabled().students
        let scope = try await resolveScope(context.parameters.get("scope") ?? "")
        let setting = try await decode(StudentScopeSettings.self, from: request)
        try await students.setEnabled(setting.enabled, scope: scope)
        context.logAdminAction(setting.enabled ? "student enabled" : "student disabled", ["distill.scope": "\(scope)"])
        return jsonResponse(StudentScopeSettings(scope: scope, enabled: setting.enabled))
    }

    router.post(APIPath.studentRollback.route) { request, context -> Response in
        let students = try enabled().students
        let rollback = try await decode(StudentRollbackRequest.self, from: request)
        var scope: String?
        if let prefix = rollback.scope { scope = try await resolveScope(prefix) }
        let active = try await students.rollback(scope: scope)
        context.logAdminAction(
            "student rolled back", ["distill.scope": "\(active.scope)", "distill.version": "\(active.id.map { "\($0)" } ?? "none")"])
        return jsonResponse(info(active))
    }

    router.get(APIPath.distill.route) { _, _ -> Response in
        jsonResponse(try enabled().distiller.status())
    }

    router.post(APIPath.distillRuns.route) { request, context -> Response in
        let distiller = try enabled().distiller
        let run = try await decode(DistillRunRequest.self, from: request)
        var scope: String?
        if let prefix = run.scope { scope = try await resolveScope(prefix) }
        let queued = try await distiller.requestRuns(scope: scope)
        context.logAdminAction("distillation requested", ["distill.scope": "\(scope ?? "every due scope")"])
        return jsonResponse(queued, status: .accepted)
    }
}

/// A stored version as the admin API shows it: its metrics, not its weights.
private func info(_ record: StudentVersionRecord) -> StudentVersionInfo {
    StudentVersionInfo(
        id: record.id ?? 0, scope: record.scope, status: record.status.rawValue, createdAt: record.createdAt,
        trainedThrough: record.trainedThrough, trainingSeconds: record.trainingSeconds,
        metrics: try? JSONDecoder().decode(StudentVersionMetrics.self, from: Data(record.metrics.utf8)))
}

import DistillAPI
import Foundation

/// The replay report as one self-contained HTML page: tables and inline SVG charts, no scripts,
/// no external files, so it can be mailed or attached to an issue as it is.
extension ReplayReport {
    static let colors: [DistillSource: String] = [.cache: "#3b82c4", .student: "#2f9e6e", .teacher: "#d9623b"]

    func html(title: String) -> String {
        let figures = whole
        var rows = ""
        for source in DistillSource.allCases {
            let share = Self.share(figures.share, source)
            let latency = figures.latencyMilliseconds[source.rawValue]
            rows += "<tr><td><span class=\"key\" style=\"background:\(Self.colors[source]!)\"></span>\(source)</td>"
            rows += "<td class=n>\(Self.percent(share))</td><td class=n>\(Self.percent(Self.agreement(figures.agreement, source)))</td>"
            rows += "<td class=n>\(latency.map { Self.ms($0.p50) } ?? "–")</td><td class=n>\(latency.map { Self.ms($0.p99) } ?? "–")</td></tr>\n"
        }
        rows += "<tr class=\"total\"><td>overall</td><td></td><td class=n>\(Self.percent(figures.agreement.overall))</td><td></td><td></td></tr>"

        let settingRows = run.sorted { $0.key < $1.key }.map { "<tr><th>\(Self.escape($0.key))</th><td>\(Self.escape($0.value))</td></tr>" }
            .joined(separator: "\n")
        let disagreementRows = disagreements.map {
            "<tr><td>\($0.source)</td><td>\(Self.escape($0.teacher))</td><td>\(Self.escape($0.served))</td><td class=n>\($0.count)</td></tr>"
        }.joined(separator: "\n")
        let runRows = distillRuns.map { run in
            "<tr><td class=n>\(run.id)</td><td class=n>\(run.startedAtRequest.map(String.init) ?? "–")</td>"
                + "<td class=n>\(run.finishedAtRequest.map(String.init) ?? "–")</td><td class=n>\(run.rows.map(String.init) ?? "–")</td>"
                + "<td class=n>\(run.trainingSeconds.map { String(format: "%.0f s", $0) } ?? "–")</td>"
                + "<td>\(Self.escape(run.outcome ?? "running"))\(run.version.map { " (v\($0))" } ?? "")\(run.trigger == "shift" ? ", due sooner on a shift" : "")</td>"
                + "<td>\(Self.escape(run.reason ?? ""))</td></tr>"
        }.joined(separator: "\n")
        let lateRows = lateTeacherClasses.map { "<tr><td>\(Self.escape($0.answer))</td><td class=n>\($0.count)</td></tr>" }
            .joined(separator: "\n")

        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
            <style>
            body{font:14px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
            h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:2em}
            table{border-collapse:collapse;margin:.5em 0} td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}
            td.n{text-align:right} tr.total td{font-weight:600}
            .key{display:inline-block;width:.8em;height:.8em;margin-right:.4em;border-radius:2px}
            .big{display:flex;gap:2.5em;margin:1em 0} .big div{font-size:.9em;color:#555} .big b{display:block;font-size:1.8em;color:#111}
            svg{display:block;margin:.5em 0} svg text{font:11px system-ui,sans-serif;fill:#444}
            .small{color:#666;font-size:.9em}
            </style></head><body>
            <h1>\(Self.escape(title))</h1>
            <p class="small">\(Self.escape(run["command"] ?? ""))</p>
            <div class="big">
            <div><b>\(Self.percent(figures.share.teacher))</b>of requests went to the teacher</div>
            <div><b>\(Self.percent(figures.agreement.overall))</b>agree with the teacher</div>
            <div><b>\(Self.percent(figures.accuracyGold.overall))</b>right against gold (teacher alone: \(Self.percent(figures.accuracyGold.teacherOnly)))</div>
            <div><b>\(Self.percent(figures.costSaved))</b>of the teacher-only cost saved</div>
            </div>
            <table><tr><th>source</th><th>share</th><th>agrees with teacher</th><th>p50</th><th>p99</th></tr>
            \(rows)
            </table>
            <p>\(figures.requests) requests, \(errors) failed. Teacher tokens \(cost.teacherTokens) against \(cost.baselineTokens) \
            if the teacher answered every request: \(String(format: "%.2f", cost.teacherCost)) against \
            \(String(format: "%.2f", cost.baselineCost)) at \(cost.pricePer1kTokens) per 1k tokens.</p>
            \(teacherCallShares.map { "<p>Why the teacher answered, as shares of the requests: \(Self.escape($0)).</p>" } ?? "")
            <h2>Who answered, over the stream</h2>
            \(sharesChart())
            <p class="small">Dashed lines: the distiller promoted a new student version (green) or kept the active one (grey).</p>
            <h2>Agreement with the teacher and accuracy against gold, over the stream</h2>
            \(qualityChart())
            <h2>Latency by source</h2>
            \(latencyChart())
            <h2>Re-distillation during the stream</h2>
            <table><tr><th>run</th><th>started at request</th><th>finished at request</th><th>teacher answers</th><th>took (±1 s)</th><th>outcome</th><th>why</th></tr>
            \(runRows.isEmpty ? "<tr><td colspan=7>none</td></tr>" : runRows)
            </table>
            <h2>Disagreements with the teacher</h2>
            <table><tr><th>source</th><th>teacher said</th><th>served</th><th>requests</th></tr>
            \(disagreementRows.isEmpty ? "<tr><td colspan=4>none</td></tr>" : disagreementRows)
            </table>
            <h2>Classes still sent to the teacher in the second half of the stream</h2>
            <table><tr><th>teacher's answer</th><th>requests</th></tr>
            \(lateRows.isEmpty ? "<tr><td colspan=2>none</td></tr>" : lateRows)
            </table>
            <h2>Run</h2>
            <table>
            \(settingRows)
            </table>
            </body></html>

            """
    }

    // MARK: - Charts

    private static let width = 900.0, height = 240.0
    private static let left = 48.0, right = 12.0, top = 10.0, bottom = 34.0
    private var plotWidth: Double { Self.width - Self.left - Self.right }
    private var plotHeight: Double { Self.height - Self.top - Self.bottom }

    /// Stacked bars: each window's shares of cache, student and teacher.
    func sharesChart() -> String {
        guard !windows.isEmpty else { return "<p>no requests</p>" }
        let barWidth = plotWidth / Double(windows.count)
        var bars = ""
        for (i, window) in windows.enumerated() {
            var y = Self.top + plotHeight
            for source in DistillSource.allCases {
                let h = Self.share(window.figures.share, source) * plotHeight
                guard h > 0 else { continue }
                y -= h
                bars += "<rect x=\"\(f(Self.left + Double(i) * barWidth))\" y=\"\(f(y))\" width=\"\(f(max(barWidth - 0.5, 0.5)))\" "
                bars += "height=\"\(f(h))\" fill=\"\(Self.colors[source]!)\"><title>requests \(window.start + 1)–\(window.end): "
                bars += "\(source) \(Self.percent(Self.share(window.figures.share, source)))</title></rect>\n"
            }
        }
        // The distiller's finished runs, where in the stream they took effect.
        let total = Double(windows.last?.end ?? 1)
        for run in distillRuns {
            guard let at = run.finishedAtRequest, run.outcome != nil else { continue }
            let x = Self.left + Double(at) / total * plotWidth
            let color = run.outcome == "promoted" ? "#0b6e4f" : "#888"
            bars += "<line x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(Self.top))\" y2=\"\(f(Self.top + plotHeight))\" stroke=\"\(color)\" "
            bars += "stroke-width=\"1.5\" stroke-dasharray=\"4 3\"><title>run \(run.id): \(Self.escape(run.outcome ?? "")) at request \(at)</title></line>\n"
        }
        let legend = DistillSource.allCases.map { ($0.rawValue, Self.colors[$0]!, false) }
        return svg(yLabels: [(0, "0%"), (0.5, "50%"), (1, "100%")], yRange: 0...1, content: bars, legend: legend)
    }

    /// Lines per window: agreement with the teacher (overall and on the student's answers), accuracy against gold, and
    /// the teacher's own accuracy.
    func qualityChart() -> String {
        let series: [(String, String, Bool, (ReplayFigures) -> Double?)] = [
            ("agreement with teacher", "#1f2937", false, { $0.agreement.overall }),
            ("student's agreement with teacher", "#059669", false, { $0.agreement.student }),
            ("accuracy vs gold", "#7c3aed", false, { $0.accuracyGold.overall }),
            ("teacher's accuracy vs gold", "#7c3aed", true, { $0.accuracyGold.teacherOnly }),
        ]
        let values = windows.flatMap { window in series.compactMap { $0.3(window.figures) } }
        guard let lowest = values.min() else { return "<p>no answers</p>" }
        // Zoom in on the range the lines live in: they differ by a few points, not tens.
        let floor = max(0, (min(lowest, 0.9) * 20).rounded(.down) / 20)
        let range = floor...1.0
        let step = plotWidth / Double(max(windows.count, 1))
        var lines = ""
        for (name, color, dashed, value) in series {
            let points = windows.enumerated().compactMap { i, window in
                value(window.figures).map { "\(f(Self.left + (Double(i) + 0.5) * step)),\(f(y($0, range)))" }
            }
            guard !points.isEmpty else { continue }
            lines += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"5 4\"" : "") "
            lines += "points=\"\(points.joined(separator: " "))\"><title>\(name)</title></polyline>\n"
        }
        let ticks = stride(from: floor, through: 1.0001, by: (1 - floor) / 4).map { ($0, Self.percent($0)) }
        return svg(yLabels: ticks, yRange: range, content: lines, legend: series.map { ($0.0, $0.1, $0.2) })
    }

    /// Horizontal bars of p50 and p99 per source, on a log scale (cache hits take milliseconds, the teacher hundreds).
    func latencyChart() -> String {
        let present = DistillSource.allCases.compactMap { source in whole.latencyMilliseconds[source.rawValue].map { (source, $0) } }
        guard let slowest = present.map(\.1.p99).max() else { return "<p>no answers</p>" }
        let decades = max(1, Int(log10(max(slowest, 1)).rounded(.up)))
        let rowHeight = 40.0
        let chartHeight = Self.top + Double(present.count) * rowHeight + Self.bottom
        // Room on the right for the last label.
        func x(_ ms: Double) -> Double { Self.left + 40 + log10(max(ms, 0.1) * 10) / Double(decades + 1) * (plotWidth - 130) }
        var content = ""
        for (i, (source, latency)) in present.enumerated() {
            let y0 = Self.top + Double(i) * rowHeight
            content += "<text x=\"\(f(Self.left - 40))\" y=\"\(f(y0 + 20))\">\(source)</text>\n"
            for (j, (label, value)) in [("p50", latency.p50), ("p99", latency.p99)].enumerated() {
                let barY = y0 + 4 + Double(j) * 16
                content += "<rect x=\"\(f(x(0.1)))\" y=\"\(f(barY))\" width=\"\(f(max(x(value) - x(0.1), 1)))\" height=\"14\" "
                content += "fill=\"\(Self.colors[source]!)\" opacity=\"\(j == 0 ? "1" : "0.55")\"></rect>"
                content += "<text x=\"\(f(x(value) + 4))\" y=\"\(f(barY + 11))\">\(label) \(Self.ms(value))</text>\n"
            }
        }
        let axisY = Self.top + Double(present.count) * rowHeight
        for power in 0...(decades + 1) {
            let ms = pow(10, Double(power - 1))
            content += "<line x1=\"\(f(x(ms)))\" x2=\"\(f(x(ms)))\" y1=\"\(f(Self.top))\" y2=\"\(f(axisY))\" stroke=\"#ccc\"></line>"
            content += "<text x=\"\(f(x(ms)))\" y=\"\(f(axisY + 14))\" text-anchor=\"middle\">\(Self.ms(ms))</text>\n"
        }
        return "<svg viewBox=\"0 0 \(Int(Self.width)) \(Int(chartHeight))\" width=\"\(Int(Self.width))\" height=\"\(Int(chartHeight))\" role=\"img\">\n\(content)</svg>"
    }

    private func y(_ value: Double, _ range: ClosedRange<Double>) -> Double {
        Self.top + (1 - (value - range.lowerBound) / (range.upperBound - range.lowerBound)) * plotHeight
    }

    /// Axes, grid lines, the x axis in requests, a legend, and the given content.
    private func svg(yLabels: [(Double, String)], yRange: ClosedRange<Double>, content: String, legend: [(String, String, Bool)]) -> String {
        var grid = ""
        for (value, label) in yLabels {
            let yy = y(value, yRange)
            grid += "<line x1=\"\(f(Self.left))\" x2=\"\(f(Self.width - Self.right))\" y1=\"\(f(yy))\" y2=\"\(f(yy))\" stroke=\"#ddd\"></line>"
            grid += "<text x=\"\(f(Self.left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        let total = windows.last?.end ?? 0
        let axisY = Self.top + plotHeight
        for fraction in [0.0, 0.25, 0.5, 0.75, 1.0] {
            // The last label ends at the axis's end: centred there, it ran past the chart's edge.
            let anchor = fraction == 1 ? "end" : "middle"
            grid += "<text x=\"\(f(Self.left + fraction * plotWidth))\" y=\"\(f(axisY + 14))\" text-anchor=\"\(anchor)\">"
            grid += "\(Int((fraction * Double(total)).rounded()))</text>\n"
        }
        grid += "<text x=\"\(f(Self.width - Self.right))\" y=\"\(f(axisY + 28))\" text-anchor=\"end\">requests</text>\n"
        var x = Self.left
        for (name, color, dashed) in legend {
            grid += "<line x1=\"\(f(x))\" x2=\"\(f(x + 16))\" y1=\"\(f(axisY + 24))\" y2=\"\(f(axisY + 24))\" stroke=\"\(color)\" "
            grid += "stroke-width=\"\(dashed ? 2 : 8)\"\(dashed ? " stroke-dasharray=\"4 3\"" : "")></line>"
            grid += "<text x=\"\(f(x + 20))\" y=\"\(f(axisY + 28))\">\(Self.escape(name))</text>\n"
            x += 30 + Double(name.count) * 6.5
        }
        return "<svg viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" width=\"\(Int(Self.width))\" height=\"\(Int(Self.height))\" role=\"img\">\n\(grid)\(content)</svg>"
    }

    // MARK: - Formatting

    static func share(_ shares: ReplayFigures.Shares, _ source: DistillSource) -> Double {
        switch source {
        case .cache: shares.cache
        case .student: shares.student
        case .teacher: shares.teacher
        }
    }

    static func agreement(_ agreement: ReplayFigures.Agreement, _ source: DistillSource) -> Double? {
        switch source {
        case .cache: agreement.cache
        case .student: agreement.student
        case .teacher: agreement.teacher
        }
    }

    static func percent(_ value: Double?) -> String {
        value.map { String(format: "%.1f%%", $0 * 100) } ?? "–"
    }

    static func ms(_ value: Double) -> String {
        value < 10 ? String(format: "%.1f ms", value) : String(format: "%.0f ms", value)
    }

    /// An SVG coordinate.
    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

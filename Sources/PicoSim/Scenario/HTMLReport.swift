import PicoModel

/// One self-contained HTML page for a finished run (inline SVG and CSS, no scripts): a lane per
/// pod with its states over time, the faults as shaded bands, requests per second by outcome,
/// detection and convergence marks, and every check's verdict.
public enum HTMLReport {
    static let width = 1_000.0
    static let left = 90.0
    static let laneHeight = 22.0

    /// The page for `scenario`, run to `world`, with `report`.
    public static func render(_ scenario: Scenario, world: SimWorld, report: ScenarioReport) -> String {
        let seconds = max(scenario.duration.secondsDouble, 0.001)
        func x(_ time: Instant) -> Double { left + (width - left - 10) * min(1, max(0, time.secondsSinceZero / seconds)) }
        let pods = world.pods.indices.filter { pod in world.starts.contains { $0.pod == pod } }
        let lanesTop = 30.0
        let lanesBottom = lanesTop + Double(pods.count) * laneHeight
        var svg: [String] = []
        // Faults: bands for what lasts, lines for what happens at an instant.
        for event in scenario.timeline {
            let start = x(Instant.zero + event.at)
            let label = self.escape(String(ScenarioWriter.action(event.action).prefix { $0 != ":" }))
            if let undo = event.duration {
                let end = x(Instant.zero + event.at + undo)
                svg.append(#"<rect class="fault" x="\#(f(start))" y="\#(f(lanesTop - 4))" width="\#(f(max(1, end - start)))" height="\#(f(lanesBottom - lanesTop + 8))"><title>\#(label) for \#(DurationText.format(undo))</title></rect>"#)
            } else {
                svg.append(#"<line class="action" x1="\#(f(start))" x2="\#(f(start))" y1="\#(f(lanesTop - 8))" y2="\#(f(lanesBottom + 4))"/>"#)
            }
            svg.append(#"<text class="small" x="\#(f(start + 2))" y="\#(f(lanesTop - 10))">\#(label)</text>"#)
        }
        // Lanes.
        for (row, pod) in pods.enumerated() {
            let y = lanesTop + Double(row) * laneHeight
            svg.append(#"<text class="lane-name" x="4" y="\#(f(y + 15))">\#(world.pods[pod].name)</text>"#)
            for segment in self.segments(of: pod, in: world) {
                svg.append(
                    #"<rect class="lane \#(segment.state)" x="\#(f(x(segment.from)))" y="\#(f(y + 2))" width="\#(f(max(0.5, x(segment.to) - x(segment.from))))" height="\#(f(laneHeight - 4))"><title>\#(world.pods[pod].name) \#(segment.state) from \#(f(segment.from.secondsSinceZero))s</title></rect>"#)
            }
            for (time, status) in self.accusations(of: pod, in: world) {
                svg.append(#"<circle class="\#(status)" cx="\#(f(x(time)))" cy="\#(f(y + laneHeight / 2))" r="3"><title>\#(status) in another pod's view at \#(f(time.secondsSinceZero))s</title></circle>"#)
            }
        }
        // Convergence marks.
        var marks: [(Instant, String)] = [(world.observations.lastDisturbance, "last disturbance")]
        if let since = world.observations.membershipConvergedSince { marks.append((since, "membership converged")) }
        for (index, (time, label)) in marks.enumerated() {
            svg.append(#"<line class="mark" x1="\#(f(x(time)))" x2="\#(f(x(time)))" y1="\#(f(lanesTop))" y2="\#(f(lanesBottom + 130))"><title>\#(label) at \#(f(time.secondsSinceZero))s</title></line>"#)
            svg.append(#"<text class="small mark-label" x="\#(f(x(time) + 2))" y="\#(f(lanesBottom + 12 + Double(index) * 10))">\#(label) \#(f(time.secondsSinceZero))s</text>"#)
        }
        // Requests per second by outcome, stacked.
        let chartTop = lanesBottom + 36
        let chartHeight = 90.0
        let buckets = self.requestBuckets(world, seconds: Int(seconds.rounded(.up)))
        let peak = max(1, buckets.map { $0.ok + $0.failed + $0.unknown }.max() ?? 1)
        let barWidth = (width - left - 10) / Double(max(1, buckets.count))
        for (second, bucket) in buckets.enumerated() {
            var base = chartTop + chartHeight
            for (count, kind) in [(bucket.ok, "ok"), (bucket.failed, "failed"), (bucket.unknown, "unknown")] where count > 0 {
                let height = chartHeight * Double(count) / Double(peak)
                base -= height
                svg.append(#"<rect class="req \#(kind)" x="\#(f(left + Double(second) * barWidth))" y="\#(f(base))" width="\#(f(max(0.5, barWidth - 0.5)))" height="\#(f(height))"><title>\#(second)s: \#(count) \#(kind)</title></rect>"#)
            }
        }
        svg.append(#"<text class="lane-name" x="4" y="\#(f(chartTop + 12))">requests/s</text><text class="small" x="4" y="\#(f(chartTop + 26))">peak \#(peak)</text>"#)
        let axisY = chartTop + chartHeight + 14
        for tick in stride(from: 0, through: Int(seconds), by: max(1, Int(seconds) / 10)) {
            svg.append(#"<text class="small" x="\#(f(x(Instant.zero + .seconds(tick))))" y="\#(f(axisY))">\#(tick)s</text>"#)
        }
        let height = axisY + 10
        let verdicts = report.results.map { result in
            let detail = result.passed ? (result.note ?? "") : "at \(result.violationTime.map { f($0.secondsSinceZero) + "s" } ?? "?"), \(result.subject ?? "?"): \(result.message ?? "")"
            return #"<tr class="\#(result.passed ? "pass" : "fail")"><td>\#(result.passed ? "PASS" : "FAIL")</td><td>\#(result.name)</td><td>\#(self.escape(detail))</td></tr>"#
        }
        let figures = report.figures.map { "<tr><td>\(self.escape($0.0))</td><td>\(self.escape($0.1))</td></tr>" }
        var expectation = ""
        if let (check, reason, isLimitation) = report.expect.expectedFailure {
            let kind = isLimitation ? "Known limitation" : "Known open bug"
            let otherwise = isLimitation ? "It does not: the scenario no longer shows the limitation." : "It does not: the bug may be fixed."
            expectation = "<p class=\"expect\">\(kind), expected to fail <b>\(check)</b>: \(self.escape(reason)). \(report.asExpected ? "It does." : otherwise)</p>"
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>pico-sim: \(self.escape(scenario.name))</title>
            <style>
            body { font: 14px system-ui, sans-serif; margin: 20px; color: #222; }
            h1 { font-size: 20px; } .verdict-pass { color: #1a7f37; } .verdict-fail { color: #c62828; }
            svg text { font: 11px system-ui, sans-serif; fill: #333; } svg .small { font-size: 9px; fill: #555; }
            .lane.starting, .lane.joining { fill: #b0bec5; } .lane.ready { fill: #66bb6a; } .lane.draining { fill: #ffa726; }
            .lane.paused { fill: #7e57c2; } .lane.left { fill: #eceff1; } .lane.down { fill: #37474f; }
            .fault { fill: #ef5350; opacity: 0.15; } .action { stroke: #c62828; stroke-width: 1; }
            .mark { stroke: #1565c0; stroke-dasharray: 4 3; } .mark-label { fill: #1565c0; }
            circle.suspect { fill: #fdd835; stroke: #555; } circle.dead { fill: #c62828; }
            .req.ok { fill: #66bb6a; } .req.failed { fill: #c62828; } .req.unknown { fill: #fdd835; }
            table { border-collapse: collapse; margin-top: 10px; } td { padding: 2px 8px; border-bottom: 1px solid #eee; }
            tr.pass td:first-child { color: #1a7f37; font-weight: bold; } tr.fail td:first-child { color: #c62828; font-weight: bold; }
            .legend span { display: inline-block; margin-right: 12px; } .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }
            </style></head><body>
            <h1>\(self.escape(scenario.name)) <span class="\(report.passed ? "verdict-pass" : "verdict-fail")">\(report.passed ? "PASS" : "FAIL")</span></h1>
            <p>\(scenario.pods) pods, \(DurationText.format(scenario.duration)) simulated, seed \(report.seed), trace \(report.traceHash)</p>
            \(expectation)
            <p class="legend"><span><i style="background:#b0bec5"></i>joining</span><span><i style="background:#66bb6a"></i>ready</span><span><i style="background:#ffa726"></i>draining</span><span><i style="background:#7e57c2"></i>paused</span><span><i style="background:#37474f"></i>down</span><span><i style="background:#eceff1"></i>left</span><span><i style="background:#fdd835"></i>suspected / unknown</span><span><i style="background:#c62828"></i>declared dead / failed</span><span><i style="background:#ef5350;opacity:.3"></i>fault</span></p>
            <svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" viewBox="0 0 \(f(width)) \(f(height))">
            \(svg.joined(separator: "\n"))
            </svg>
            <h2>Checks</h2><table id="verdicts">\(verdicts.joined(separator: "\n"))</table>
            <h2>Figures</h2><table>\(figures.joined(separator: "\n"))</table>
            </body></html>

            """
    }

    struct Segment {
        var from: Instant
        var to: Instant
        var state: String
    }

    /// A pod's states over time: from each process start, its lifecycle phases, pauses, and down
    /// or left after it stopped.
    static func segments(of pod: Int, in world: SimWorld) -> [Segment] {
        var changes: [(Instant, String)] = world.starts.filter { $0.pod == pod }.map { ($0.time, "joining") }
        for (time, source, event) in world.events where source == pod {
            if case .phaseChanged(_, let to) = event { changes.append((time, "\(to)")) }
        }
        for stop in world.stops where stop.pod == pod { changes.append((stop.time, stop.crashed ? "down" : "left")) }
        for pause in world.pauses where pause.pod == pod {
            changes.append((pause.from, "paused"))
            if let to = pause.to { changes.append((to, "ready")) }
        }
        changes.sort { $0.0 < $1.0 }
        var segments: [Segment] = []
        for (index, change) in changes.enumerated() {
            let end = index + 1 < changes.count ? changes[index + 1].0 : world.now
            if end > change.0 { segments.append(Segment(from: change.0, to: end, state: change.1)) }
        }
        return segments
    }

    /// When other pods first suspected, or declared dead, one of this pod's UIDs.
    static func accusations(of pod: Int, in world: SimWorld) -> [(Instant, String)] {
        let uids = Set(world.starts.filter { $0.pod == pod }.map(\.uid))
        var seen: Set<String> = []
        var marks: [(Instant, String)] = []
        for (time, _, event) in world.events {
            guard case .membership(.memberStatusChanged(let uid, _, _, let to)) = event, uids.contains(uid), to.status == .suspect || to.status == .dead else { continue }
            if seen.insert("\(uid)-\(to.status)-\(time.nanoseconds / 1_000_000_000)").inserted { marks.append((time, "\(to.status)")) }
        }
        return marks
    }

    static func requestBuckets(_ world: SimWorld, seconds: Int) -> [(ok: Int, failed: Int, unknown: Int)] {
        var buckets = Array(repeating: (ok: 0, failed: 0, unknown: 0), count: max(1, seconds))
        for record in world.traffic.history {
            let second = min(buckets.count - 1, max(0, Int(record.issuedAt.secondsSinceZero)))
            switch record.outcome {
            case .ok: buckets[second].ok += 1
            case .failed: buckets[second].failed += 1
            case .unknown: buckets[second].unknown += 1
            case nil: continue
            }
        }
        return buckets
    }

    static func f(_ value: Double) -> String {
        let scaled = (value * 10).rounded() / 10
        return scaled == scaled.rounded() ? "\(Int(scaled))" : "\(scaled)"
    }

    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

extension Instant {
    /// Seconds since the start of the run.
    var secondsSinceZero: Double { Double(self.nanoseconds) / 1e9 }
}

import PicoModel

/// One self-contained HTML page for a finished run (inline SVG and CSS, no scripts): a lane per
/// pod with its states over time, the faults as shaded bands, requests per second by outcome,
/// tunnels per pod over time, detection and convergence marks, the timeline (partitions name the
/// links they cut), and every check's verdict. Labels never overlap or run past the right edge.
public enum HTMLReport {
    static let width = 1_000.0
    static let left = 90.0
    static let laneHeight = 22.0
    /// Label rows' height, and the width of a character of a small label (an estimate: the page
    /// has no script to measure text).
    static let labelRow = 11.0
    static let smallCharacter = 5.2
    /// Line colours of the tunnels-per-pod chart, by pod ordinal.
    static let palette = ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#ad1457", "#9e9d24", "#37474f"]

    /// A small label at `x`: where it starts, and whether it ends at `x` (text-anchor end) because
    /// it would run past the right edge.
    struct PlacedLabel {
        var x: Double
        var row: Int
        var anchorEnd: Bool
    }

    /// Places small labels, each at its mark's `x`, in rows: a label goes into the first row where
    /// it overlaps no label already placed; one that would run past `right` ends at its mark
    /// instead of starting there.
    static func place(_ marks: [(x: Double, text: String)], right: Double) -> [PlacedLabel] {
        var rows: [[ClosedRange<Double>]] = []
        return marks.map { mark in
            let width = Double(mark.text.count) * self.smallCharacter
            let anchorEnd = mark.x + 2 + width > right
            let span = anchorEnd ? (mark.x - 2 - width)...(mark.x - 2) : (mark.x + 2)...(mark.x + 2 + width)
            let row = rows.firstIndex { placed in !placed.contains { $0.overlaps((span.lowerBound - 3)...(span.upperBound + 3)) } } ?? rows.count
            if row == rows.count { rows.append([]) }
            rows[row].append(span)
            return PlacedLabel(x: anchorEnd ? mark.x - 2 : mark.x + 2, row: row, anchorEnd: anchorEnd)
        }
    }

    /// A small text element for `label`.
    static func text(_ text: String, _ label: PlacedLabel, y: Double, classes: String = "small", fill: String? = nil) -> String {
        let style = fill.map { #" style="fill:\#($0)""# } ?? ""
        return #"<text class="\#(classes)" x="\#(f(label.x))" y="\#(f(y))"\#(label.anchorEnd ? #" text-anchor="end""# : "")\#(style)>\#(self.escape(text))</text>"#
    }

    /// The page for `scenario`, run to `world`, with `report`.
    public static func render(_ scenario: Scenario, world: SimWorld, report: ScenarioReport) -> String {
        let seconds = max(scenario.duration.secondsDouble, 0.001)
        func x(_ time: Instant) -> Double { left + (width - left - 10) * min(1, max(0, time.secondsSinceZero / seconds)) }
        let pods = world.pods.indices.filter { pod in world.starts.contains { $0.pod == pod } }
        let right = width - 2
        // Faults: bands for what lasts, lines for what happens at an instant; their labels in as
        // many rows above the lanes as events at nearby times need.
        let faultLabels = scenario.timeline.map { event in
            (x: x(Instant.zero + event.at), text: String(ScenarioWriter.action(event.action).prefix { $0 != ":" }))
        }
        let faultPlaces = self.place(faultLabels, right: right)
        let lanesTop = 24.0 + Double(faultPlaces.map(\.row).max() ?? 0) * labelRow
        let lanesBottom = lanesTop + Double(pods.count) * laneHeight
        var svg: [String] = []
        for (index, event) in scenario.timeline.enumerated() {
            let start = faultLabels[index].x
            let label = self.escape(ScenarioWriter.action(event.action))
            if let undo = event.duration {
                let end = x(Instant.zero + event.at + undo)
                svg.append(#"<rect class="fault" x="\#(f(start))" y="\#(f(lanesTop - 4))" width="\#(f(max(1, end - start)))" height="\#(f(lanesBottom - lanesTop + 8))"><title>\#(label) for \#(DurationText.format(undo))</title></rect>"#)
            } else {
                svg.append(#"<line class="action" x1="\#(f(start))" x2="\#(f(start))" y1="\#(f(lanesTop - 8))" y2="\#(f(lanesBottom + 4))"><title>\#(label)</title></line>"#)
            }
            svg.append(self.text(faultLabels[index].text, faultPlaces[index], y: lanesTop - 10 - Double(faultPlaces[index].row) * labelRow))
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
        // Convergence marks, their labels in rows under the lanes.
        var marks: [(Instant, String)] = [(world.observations.lastDisturbance, "last disturbance")]
        if let since = world.observations.membershipConvergedSince { marks.append((since, "membership converged")) }
        let markLabels = marks.map { (x: x($0.0), text: "\($0.1) \(f($0.0.secondsSinceZero))s") }
        let markPlaces = self.place(markLabels, right: right)
        let chartTop = lanesBottom + 26 + Double(markPlaces.map(\.row).max() ?? 0) * labelRow
        let chartHeight = 90.0
        let tunnelTop = chartTop + chartHeight + 30
        for (index, (time, label)) in marks.enumerated() {
            svg.append(#"<line class="mark" x1="\#(f(x(time)))" x2="\#(f(x(time)))" y1="\#(f(lanesTop))" y2="\#(f(tunnelTop + chartHeight))"><title>\#(label) at \#(f(time.secondsSinceZero))s</title></line>"#)
            svg.append(self.text(markLabels[index].text, markPlaces[index], y: lanesBottom + 12 + Double(markPlaces[index].row) * labelRow, classes: "small mark-label"))
        }
        // Requests per second by outcome, stacked.
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
        let ticks = Array(stride(from: 0, through: Int(seconds), by: max(1, Int(seconds) / 10)))
        let tickPlaces = self.place(ticks.map { (x: x(Instant.zero + .seconds($0)) - 2, text: "\($0)s") }, right: right)
        for (tick, place) in zip(ticks, tickPlaces) { svg.append(self.text("\(tick)s", place, y: axisY + Double(place.row) * labelRow)) }
        let legendTop = self.tunnelChart(world, pods: pods, top: tunnelTop, height: chartHeight, x: x, into: &svg)
        let legendPlaces = self.place(pods.enumerated().map { (x: left + Double($0.offset) * 70, text: world.pods[$0.element].name) }, right: right)
        for (row, pod) in pods.enumerated() {
            svg.append(self.text(world.pods[pod].name, legendPlaces[row], y: legendTop + Double(legendPlaces[row].row) * labelRow, fill: self.palette[pod % self.palette.count]))
        }
        let height = legendTop + Double(legendPlaces.map(\.row).max() ?? 0) * labelRow + 10
        let timeline = report.timeline.map { "<tr><td>\(f($0.0.secondsSinceZero))s</td><td>\(self.escape($0.1))</td></tr>" }
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
            polyline.tunnels { fill: none; stroke-width: 1.5; } .axis { stroke: #bbb; }
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
            <h2>Timeline</h2><table id="timeline-events">\(timeline.joined(separator: "\n"))</table>
            <h2>Figures</h2><table>\(figures.joined(separator: "\n"))</table>
            </body></html>

            """
    }

    /// Tunnels per active pod over time (`Observations.tunnelSamples`): a line per pod, broken
    /// while it is not running and ready, scaled to the most any pod held. Returns where the
    /// legend goes.
    static func tunnelChart(_ world: SimWorld, pods: [Int], top: Double, height: Double, x: (Instant) -> Double, into svg: inout [String]) -> Double {
        let samples = world.observations.tunnelSamples
        let peak = max(1, samples.flatMap(\.counts).max() ?? 0)
        func y(_ count: Int) -> Double { top + height - height * Double(count) / Double(peak) }
        svg.append(#"<line class="axis" x1="\#(f(left))" x2="\#(f(width - 10))" y1="\#(f(top + height))" y2="\#(f(top + height))"/>"#)
        for pod in pods {
            var runs: [[String]] = [[]]
            for sample in samples {
                guard pod < sample.perPod.count, let count = sample.perPod[pod] else {
                    if !(runs.last?.isEmpty ?? true) { runs.append([]) }
                    continue
                }
                runs[runs.count - 1].append("\(f(x(sample.time))),\(f(y(count)))")
            }
            for run in runs where !run.isEmpty {
                svg.append(#"<polyline class="tunnels" stroke="\#(self.palette[pod % self.palette.count])" points="\#(run.joined(separator: " "))"><title>\#(world.pods[pod].name) tunnels</title></polyline>"#)
            }
        }
        svg.append(#"<text class="lane-name" x="4" y="\#(f(top + 12))">tunnels/pod</text><text class="small" x="4" y="\#(f(top + 26))">peak \#(peak)</text>"#)
        return top + height + 14
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

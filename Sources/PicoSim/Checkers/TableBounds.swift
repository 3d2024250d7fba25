import PicoModel

// ==== ---- Bounds checker: every bounded table of every pod, all the time ------------------------------

extension SimWorld {
    /// Checks each of `node`'s bounded tables against its bound (run with the invariants, after
    /// steps of pod `pod`): the first time a table of a pod holds more than its bound is an
    /// invariant violation naming the pod, the table, its size and the bound. Also keeps each
    /// table's largest size for the report.
    mutating func checkTableBounds(of node: ClusterNode, pod: Int) {
        self.checkTableBounds(node.tableSizes, pod: pod)
    }

    /// `checkTableBounds(of:pod:)` for table sizes already read.
    mutating func checkTableBounds(_ sizes: [TableSize], pod: Int) {
        if self.tablePeaks.count != sizes.count { self.tablePeaks = sizes.map { TableSize(name: $0.name, size: 0, bound: $0.bound) } }
        // Peaks first, in place and by index (every step of every pod comes through here); the
        // rare table above its bound is reported below.
        var anyAbove = false
        self.tablePeaks.withUnsafeMutableBufferPointer { peaks in
            for position in sizes.indices {
                let size = sizes[position].size
                if size > peaks[position].size { peaks[position].size = size }
                if let bound = sizes[position].bound, size > bound { anyAbove = true }
            }
        }
        guard anyAbove else { return }
        for table in sizes {
            guard table.exceedsBound, let bound = table.bound else { continue }
            let key = "\(self.pods[pod].name)/\(table.name)"
            guard self.reportedBounds.insert(key).inserted else { continue }
            self.violations.append((self.now, self.pods[pod].name, "table \(table.name) holds \(table.size) items, above its bound of \(bound)"))
        }
    }
}

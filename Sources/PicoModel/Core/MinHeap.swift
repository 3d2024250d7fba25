/// A binary min-heap: O(log n) push and pop, the smallest element first (ties in no stated
/// order, so elements should order completely).
struct MinHeap<Element: Comparable & Hashable & Sendable>: Hashable, Sendable {
    private var items: [Element] = []

    init() {}

    init(_ elements: [Element]) {
        for element in elements { self.push(element) }
    }

    var count: Int { self.items.count }
    var first: Element? { self.items.first }

    mutating func push(_ element: Element) {
        self.items.append(element)
        var child = self.items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.items[child] < self.items[parent] else { break }
            self.items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popFirst() {
        guard !self.items.isEmpty else { return }
        self.items.swapAt(0, self.items.count - 1)
        self.items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.items.count, self.items[left] < self.items[smallest] { smallest = left }
            if right < self.items.count, self.items[right] < self.items[smallest] { smallest = right }
            guard smallest != parent else { return }
            self.items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

import DirectorCore
import Foundation
import Testing

@Suite("Single-producer ring")
struct SingleProducerRingTests {
    @Test("fills, refuses when full, empties in order, wraps around")
    func singleThread() {
        let ring = SingleProducerRing<Int>(capacity: 6)
        #expect(ring.capacity == 8)
        #expect(ring.pop() == nil)
        for value in 0..<8 { #expect(ring.push(value)) }
        #expect(!ring.push(8), "full")
        #expect(ring.pop() == 0 && ring.pop() == 1)
        #expect(ring.push(8) && ring.push(9))
        var drained: [Int] = []
        #expect(ring.drain { drained.append($0) } == 8)
        #expect(drained == Array(2...9) && ring.count == 0)
    }

    @Test("releases what is left in it")
    func releasesElements() {
        final class Token: @unchecked Sendable {}
        weak var watched: Token?
        do {
            let ring = SingleProducerRing<Token>(capacity: 4)
            let token = Token()
            watched = token
            #expect(ring.push(token))
        }
        #expect(watched == nil)
    }

    @Test("two threads: every element arrives once and in order")
    func twoThreads() {
        let ring = SingleProducerRing<UInt64>(capacity: 1024)
        let total: UInt64 = 2_000_000
        let producer = Thread {
            var next: UInt64 = 1
            while next <= total {
                if ring.push(next) { next += 1 }
            }
        }
        producer.start()
        var expected: UInt64 = 1
        var outOfOrder = 0
        let deadline = Date().addingTimeInterval(60)
        while expected <= total && Date() < deadline {
            if let value = ring.pop() {
                if value != expected { outOfOrder += 1 }
                expected = value + 1
            }
        }
        #expect(expected == total + 1, "all \(total) elements arrived")
        #expect(outOfOrder == 0)
    }
}

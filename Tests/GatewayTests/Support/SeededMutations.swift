/// A small seeded generator (SplitMix64), so mutation runs repeat exactly.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One to three mutations of `bytes`: a byte flipped, a token inserted, a slice cut out, or a
    /// slice repeated. The hostile-input oracles' seeded runs use it.
    mutating func mutate(_ bytes: inout [UInt8], tokens: [[UInt8]]) {
        for _ in 0..<(1 + Int(next() % 3)) {
            let at = Int(next() % UInt64(bytes.count + 1))
            switch next() % 4 {
            case 0 where !bytes.isEmpty:
                bytes[min(at, bytes.count - 1)] = UInt8(truncatingIfNeeded: next())
            case 1:
                bytes.insert(contentsOf: tokens[Int(next() % UInt64(tokens.count))], at: at)
            case 2 where at < bytes.count:
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(next() % 8)))
            default:
                let end = min(bytes.count, at + Int(next() % 16))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            }
        }
    }
}

/// A request body of any size, made chunk by chunk as the client sends it, so a test can upload
/// far more than it would want to hold (100 MB, say).
///
/// Byte `i` of the body is `byte(at: i)`, a pattern that repeats every 256 bytes, so a test can
/// check what came back without keeping a copy, and every chunk can share one buffer.
struct GeneratedChunks: AsyncSequence, Sendable {
    typealias Element = [UInt8]

    var totalBytes: Int
    /// Rounded up to a multiple of 256 so that every chunk starts the pattern afresh.
    var chunkSize: Int

    init(totalBytes: Int, chunkSize: Int = 64 * 1024) {
        self.totalBytes = totalBytes
        self.chunkSize = Swift.max(256, (chunkSize + 255) / 256 * 256)
    }

    static func byte(at index: Int) -> UInt8 { UInt8(truncatingIfNeeded: (index & 0xff) &* 7) }

    struct AsyncIterator: AsyncIteratorProtocol {
        var offset = 0
        let totalBytes: Int
        let chunk: [UInt8]

        mutating func next() async -> [UInt8]? {
            guard self.offset < self.totalBytes else { return nil }
            let size = Swift.min(self.chunk.count, self.totalBytes - self.offset)
            self.offset += size
            return size == self.chunk.count ? self.chunk : Array(self.chunk[..<size])
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(totalBytes: self.totalBytes, chunk: (0..<self.chunkSize).map(Self.byte(at:)))
    }
}

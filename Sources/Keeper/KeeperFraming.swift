import Foundation

/// The keeper protocol on the wire: each message is a frame of
///
///     "GK"  version (1 byte)  length (4 bytes, big-endian)  JSON payload (length bytes)
///
/// The version is checked on every frame, so a keeper and a worker from different releases find
/// out at the first message instead of misreading each other; JSON keeps a frame readable in a
/// packet capture and lets fields be added. Frames are small (a table of instances), so a
/// payload above `maxPayload` is refused as a protocol error rather than buffered.
public enum KeeperFraming {
    public static let version: UInt8 = 1
    public static let magic: [UInt8] = [0x47, 0x4B]  // "GK"
    public static let headerSize = 7
    public static let maxPayload = 4 << 20

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notAKeeperFrame
        case unsupportedVersion(UInt8)
        case tooLarge(Int)
        case undecodable(String)

        public var description: String {
            switch self {
            case .notAKeeperFrame: "not a keeper protocol frame"
            case .unsupportedVersion(let v): "keeper protocol version \(v) is not supported (this side speaks \(KeeperFraming.version))"
            case .tooLarge(let n): "keeper frame of \(n) bytes exceeds \(KeeperFraming.maxPayload)"
            case .undecodable(let why): "keeper frame cannot be decoded: \(why)"
            }
        }
    }

    public static func encode(_ message: KeeperMessage) throws -> [UInt8] {
        let payload = try JSONEncoder().encode(message)
        guard payload.count <= maxPayload else { throw Failure.tooLarge(payload.count) }
        let length = UInt32(payload.count)
        return magic + [version, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
            + payload
    }

    /// Collects bytes as they arrive and yields whole messages; a frame may be split anywhere.
    public struct Decoder {
        private var buffer: [UInt8] = []

        public init() {}

        public mutating func append(_ bytes: some Sequence<UInt8>) {
            buffer.append(contentsOf: bytes)
        }

        /// The next whole message, nil when more bytes are needed. After a failure the stream
        /// cannot be trusted: the caller closes the link.
        public mutating func next() throws(Failure) -> KeeperMessage? {
            if buffer.count >= 2, Array(buffer[0..<2]) != KeeperFraming.magic { throw .notAKeeperFrame }
            guard buffer.count >= KeeperFraming.headerSize else { return nil }
            guard buffer[2] == KeeperFraming.version else { throw .unsupportedVersion(buffer[2]) }
            let length = Int(buffer[3]) << 24 | Int(buffer[4]) << 16 | Int(buffer[5]) << 8 | Int(buffer[6])
            guard length <= KeeperFraming.maxPayload else { throw .tooLarge(length) }
            guard buffer.count >= KeeperFraming.headerSize + length else { return nil }
            let payload = Data(buffer[KeeperFraming.headerSize..<(KeeperFraming.headerSize + length)])
            buffer.removeFirst(KeeperFraming.headerSize + length)
            do {
                return try JSONDecoder().decode(KeeperMessage.self, from: payload)
            } catch {
                throw .undecodable("\(error)")
            }
        }
    }
}

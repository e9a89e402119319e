/// `$PORT`, `$GATEWAY_INSTANCE` and `$GATEWAY_DEPLOYMENT` (or `${PORT}`, ...) in a command's
/// arguments and working directory, replaced by each instance's own values when it is spawned.
///
/// A command is run without a shell, so `["gunicorn", "-b", "127.0.0.1:$PORT"]` would otherwise
/// hand gunicorn the text `$PORT`. Only these names are replaced: they are what the supervisor
/// knows per instance (and also sets in its environment). Any other `$NAME` is left as written,
/// for a program that reads it itself or a `sh -c` script whose shell expands it. `$$` stands for
/// a literal `$` (so `$$PORT` is the text `$PORT`).
public enum CommandExpansion {
    /// The names replaced, in the order messages list them.
    public static let names = ["PORT", "GATEWAY_INSTANCE", "GATEWAY_DEPLOYMENT"]

    /// `text` with the variables in `values` replaced and `$$` made `$`; every other `$`
    /// reference stays as written.
    public static func expand(_ text: String, _ values: [String: String]) -> String {
        var result = ""
        for piece in pieces(of: text) {
            switch piece {
            case .text(let literal):
                result += literal
            case .dollar:
                result += "$"
            case .reference(let name, let written):
                result += values[name] ?? String(written)
            }
        }
        return result
    }

    /// The names of the `$NAME` and `${NAME}` references in `text` that `expand` leaves alone,
    /// in order, each once.
    public static func unexpandedNames(in text: String) -> [String] {
        var found: [String] = []
        for case .reference(let name, _) in pieces(of: text) where !names.contains(name) && !found.contains(name) {
            found.append(name)
        }
        return found
    }

    /// Whether `expand` would replace anything in `text` (a path that cannot be checked before
    /// the instance exists).
    public static func expandsAnything(in text: String) -> Bool {
        pieces(of: text).contains { piece in
            if case .reference(let name, _) = piece { return names.contains(name) }
            return false
        }
    }

    private enum Piece {
        case text(Substring)
        /// `$$`.
        case dollar
        /// `$NAME` or `${NAME}`, with the text it was written as.
        case reference(String, written: Substring)
    }

    private static func pieces(of text: String) -> [Piece] {
        var pieces: [Piece] = []
        let scalars = text.unicodeScalars
        var index = scalars.startIndex
        var literalStart = index
        func flush(upTo end: String.UnicodeScalarView.Index) {
            if literalStart < end { pieces.append(.text(Substring(scalars[literalStart..<end]))) }
        }
        while index < scalars.endIndex {
            guard scalars[index] == "$" else {
                index = scalars.index(after: index)
                continue
            }
            let dollar = index
            let next = scalars.index(after: dollar)
            guard next < scalars.endIndex else { break }
            if scalars[next] == "$" {
                flush(upTo: dollar)
                pieces.append(.dollar)
                index = scalars.index(after: next)
                literalStart = index
            } else if scalars[next] == "{" {
                let nameStart = scalars.index(after: next)
                guard let close = scalars[nameStart...].firstIndex(of: "}"),
                    isName(scalars[nameStart..<close])
                else {
                    index = next
                    continue
                }
                flush(upTo: dollar)
                let end = scalars.index(after: close)
                pieces.append(.reference(String(scalars[nameStart..<close]), written: Substring(scalars[dollar..<end])))
                index = end
                literalStart = index
            } else if isNameStart(scalars[next]) {
                let end = scalars[next...].firstIndex { !isNameCharacter($0) } ?? scalars.endIndex
                flush(upTo: dollar)
                pieces.append(.reference(String(scalars[next..<end]), written: Substring(scalars[dollar..<end])))
                index = end
                literalStart = index
            } else {
                index = next
            }
        }
        flush(upTo: scalars.endIndex)
        return pieces
    }

    private static func isNameStart(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar)
    }

    private static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        isNameStart(scalar) || ("0"..."9").contains(scalar)
    }

    private static func isName(_ scalars: Substring.UnicodeScalarView) -> Bool {
        guard let first = scalars.first, isNameStart(first) else { return false }
        return scalars.allSatisfy(isNameCharacter)
    }
}

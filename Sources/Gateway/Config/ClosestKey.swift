/// The "did you mean" of unknown-key errors: the known key nearest to a mistyped one.
enum ClosestKey {
    /// The known key with the smallest edit distance to `key`, if it is close enough to be a
    /// likely typo (at most a third of the key's length, and at least one edit allowed).
    static func find(_ key: String, among known: [String]) -> String? {
        let typed = Array(key.lowercased())
        let limit = max(1, typed.count / 3)
        var best: (key: String, distance: Int)?
        for candidate in known {
            let distance = Self.editDistance(typed, Array(candidate))
            if distance <= limit && distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.key
    }

    /// Edit distance counting insertions, deletions, substitutions and swaps of two adjacent
    /// characters (the commonest typo: `idel` for `idle`) as one edit each.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        // distances[i][j]: distance between the first i characters of a and the first j of b.
        var distances = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { distances[i][0] = i }
        for j in 0...b.count { distances[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var best = min(distances[i - 1][j] + 1, distances[i][j - 1] + 1, distances[i - 1][j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = min(best, distances[i - 2][j - 2] + 1)
                }
                distances[i][j] = best
            }
        }
        return distances[a.count][b.count]
    }
}

import Testing

@testable import Supervisor

/// `$PORT`, `$GATEWAY_INSTANCE` (and the `${...}` forms) in a command and its working directory,
/// replaced by each instance's own values; everything else is left as written.
@Suite struct CommandExpansionTests {
    static let values = ["PORT": "9105", "GATEWAY_INSTANCE": "shop#2", "GATEWAY_DEPLOYMENT": "shop"]

    @Test(arguments: [
        ("$PORT", "9105"),
        ("${PORT}", "9105"),
        ("127.0.0.1:$PORT", "127.0.0.1:9105"),
        ("--bind=0.0.0.0:${PORT}/x", "--bind=0.0.0.0:9105/x"),
        ("${PORT}0", "91050"),
        ("/srv/$GATEWAY_INSTANCE/data", "/srv/shop#2/data"),
        ("${GATEWAY_DEPLOYMENT}-${GATEWAY_INSTANCE}", "shop-shop#2"),
        ("$PORT$PORT", "91059105"),
        ("$$PORT", "$PORT"),
        ("$$", "$"),
        ("cost: $$5", "cost: $5"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1", "$1"),
        ("$PORTS", "$PORTS"),
        ("$HOME/x", "$HOME/x"),
        ("${HOME}", "${HOME}"),
        ("${PORT", "${PORT"),
        ("${}", "${}"),
        ("no dollar", "no dollar"),
        ("$é$PORT", "$é9105"),
    ])
    func expands(text: String, expected: String) {
        #expect(CommandExpansion.expand(text, Self.values) == expected)
    }

    @Test func referencesLeftAloneAreNamed() {
        #expect(CommandExpansion.unexpandedNames(in: "$HOME/x:${USER}:$PORT") == ["HOME", "USER"])
        #expect(CommandExpansion.unexpandedNames(in: "$$HOME and $$ and ${PORT}") == [])
        #expect(CommandExpansion.unexpandedNames(in: "$PORTS") == ["PORTS"])
        #expect(CommandExpansion.unexpandedNames(in: "price $5") == [])
        #expect(CommandExpansion.expandsAnything(in: "/srv/$GATEWAY_INSTANCE"))
        #expect(!CommandExpansion.expandsAnything(in: "/srv/$$GATEWAY_INSTANCE"))
    }
}

import Testing
@testable import Supervisor

@Suite struct LineAssemblerTests {
    @Test func splitsChunksIntoWholeLinesAcrossReads() {
        var assembler = LineAssembler(maxLineBytes: 100)
        #expect(assembler.append(Array("hel".utf8)) == [])
        #expect(assembler.append(Array("lo\nwor".utf8)) == ["hello"])
        #expect(assembler.append(Array("ld\r\n\nlast".utf8)) == ["world", ""])
        #expect(assembler.finish() == "last")
        #expect(assembler.finish() == nil)
    }

    @Test func cutsALongLineAndDropsItsRestUpToTheNewline() {
        var assembler = LineAssembler(maxLineBytes: 4)
        #expect(assembler.append(Array("abcd\n".utf8)) == ["abcd"])  // exactly the limit: whole
        #expect(assembler.append(Array("abcdef".utf8)) == ["abcd" + LineAssembler.cutMarker])
        #expect(assembler.append(Array("ghij".utf8)) == [])
        #expect(assembler.append(Array("kl\nxy\n".utf8)) == ["xy"])
        #expect(assembler.append(Array("abcdefgh\nz".utf8)) == ["abcd" + LineAssembler.cutMarker])
        #expect(assembler.finish() == "z")
    }

    @Test func aCutNeverSplitsAUTF8Character() {
        var assembler = LineAssembler(maxLineBytes: 5)
        // "ab" then "é" (2 bytes) then "€" (3 bytes): the limit falls inside the euro sign.
        #expect(assembler.append(Array("abé€x\n".utf8)) == ["abé" + LineAssembler.cutMarker])
    }

    @Test func invalidUTF8IsReplacedNotFatal() {
        var assembler = LineAssembler(maxLineBytes: 100)
        #expect(assembler.append([0x61, 0xff, 0xfe, 0x62, 0x0a]) == ["a\u{FFFD}\u{FFFD}b"])
    }
}

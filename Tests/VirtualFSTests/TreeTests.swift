import Testing
import VirtualFS
#if canImport(Glibc)
import Glibc
#endif

@Suite("VirtualFS tree and attributes, without a mount")
struct TreeTests {
    @Test("paths resolve, entries sort, removal retires the whole subtree")
    func structure() throws {
        let tree = Tree()
        let (dir, leaf) = try tree.update { (c: inout TreeContents) throws(FSError) in
            let dir = try c.directories("a/b")
            let leaf = try c.attribute("x", in: dir, .constant("1\n"))
            try c.symlink("l", in: dir, to: "x")
            return (dir, leaf)
        }
        #expect(try tree.resolve("a/b/x").ino == leaf.ino)
        #expect(try tree.entries(of: dir).map(\.name) == ["l", "x"])
        #expect(tree.path(of: leaf.ino) == "a/b/x")
        let open = try leaf.contentOpen(.read)
        #expect(try open.readBytes(offset: 0, size: 10) == Array("1\n".utf8))
        try tree.update { (c: inout TreeContents) throws(FSError) in try c.remove("a", in: Tree.rootIno) }
        #expect(!leaf.isAlive)
        #expect(throws: FSError.self) { try tree.resolve("a/b/x") }
        do {
            _ = try open.readBytes(offset: 0, size: 10)
            Issue.record("read on a removed attribute should fail")
        } catch {
            #expect(error.errno == ENODEV)
        }
    }

    @Test("adding a name twice is EEXIST")
    func duplicate() throws {
        let tree = Tree()
        try tree.update { (c: inout TreeContents) throws(FSError) in try c.attribute("x", in: Tree.rootIno, .constant("")) }
        do {
            try tree.update { (c: inout TreeContents) throws(FSError) in try c.attribute("x", in: Tree.rootIno, .constant("")) }
            Issue.record("duplicate accepted")
        } catch {
            #expect(error.errno == EEXIST)
        }
    }

    @Test("show runs at open-time reads from offset 0 and serves later offsets from the snapshot")
    func showSnapshot() throws {
        let counter = Counter()
        let tree = Tree()
        let node = try tree.update { (c: inout TreeContents) throws(FSError) in
            try c.attribute("n", in: Tree.rootIno, Attribute(show: { "value-\(counter.next())\n" }))
        }
        let f = try node.contentOpen(.read)
        #expect(try f.readBytes(offset: 0, size: 3) == Array("val".utf8))
        #expect(try f.readBytes(offset: 3, size: 100) == Array("ue-1\n".utf8))
        #expect(try f.readBytes(offset: 0, size: 100) == Array("value-2\n".utf8))
    }

    @Test("open modes follow show/store: write-only and read-only attributes are EACCES the other way")
    func accessModes() throws {
        let tree = Tree()
        let (wo, ro) = try tree.update { (c: inout TreeContents) throws(FSError) in
            (try c.attribute("wo", in: Tree.rootIno, Attribute(store: { _ in })),
             try c.attribute("ro", in: Tree.rootIno, .constant("x")))
        }
        #expect(wo.permissions == 0o200)
        #expect(ro.permissions == 0o444)
        for (node, access) in [(wo, OpenAccess.read), (ro, OpenAccess.write)] {
            do {
                _ = try node.contentOpen(access)
                Issue.record("opened \(node.name) for \(access)")
            } catch {
                #expect(error.errno == EACCES)
            }
        }
    }
}

final class Counter: @unchecked Sendable {
    private var value = 0
    func next() -> Int { value += 1; return value }
}

extension Node {
    func contentOpen(_ access: OpenAccess) throws(FSError) -> any OpenFile {
        guard case .file(let content) = kind else { throw FSError(EISDIR) }
        return try content.open(self, access: access)
    }
}

import Foundation

/// A small Linux guest for QEMU: Debian's kernel and busybox (scripts/guest-assets.sh takes
/// them out of their packages) and an initramfs built here, whose /init runs `script`.
struct Guest {
    let kernel: String
    let initrd: String
    let console: String

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The assets directory (downloaded once into /var/cache/mdevsim-guest).
    static func assets() throws -> String {
        let r = try run("/bin/bash", [repository + "/scripts/guest-assets.sh"], timeout: 300)
        guard r.status == 0 else { throw QEMUError("scripts/guest-assets.sh failed: \(r)") }
        return r.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    init(script: String) throws {
        let assets = try Guest.assets()
        let dir = makeTempDirectory("guest")
        kernel = assets + "/vmlinuz"
        initrd = dir + "/initrd.cpio"
        console = dir + "/console.log"
        var archive = Newc()
        for d in ["bin", "dev", "proc", "sys", "lib", "lib/modules"] { archive.directory(d) }
        archive.device("dev/console", major: 5, minor: 1)
        archive.file("bin/busybox", try Array(Data(contentsOf: URL(fileURLWithPath: assets + "/busybox"))), mode: 0o755)
        for m in ["uio", "uio_pci_generic"] {
            archive.file("lib/modules/\(m).ko", try Array(Data(contentsOf: URL(fileURLWithPath: assets + "/modules/\(m).ko"))), mode: 0o644)
        }
        archive.file("init", Array(("#!/bin/busybox sh\n" + script).utf8), mode: 0o755)
        try Data(archive.finish()).write(to: URL(fileURLWithPath: initrd))
    }

    /// QEMU arguments that boot it, its console in `console`.
    var arguments: [String] {
        ["-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 loglevel=4", "-serial", "file:\(console)", "-no-reboot"]
    }

    var output: String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }

    /// The value after `key ` on the console's last line that starts with it.
    func line(_ key: String) -> [String]? {
        // The serial console ends lines with \r\n (one Character in Swift): split on scalars.
        let lines = output.unicodeScalars.split { $0 == "\n" || $0 == "\r" }.map { String(String.UnicodeScalarView($0)) }
        return lines.last { $0.hasPrefix(key + " ") }.map { $0.split(separator: " ").dropFirst().map(String.init) }
    }
}

/// The kernel's initramfs format (cpio "newc").
struct Newc {
    private var out: [UInt8] = []
    private var ino = 1

    private mutating func entry(_ name: String, mode: UInt32, data: [UInt8] = [], rdev: (UInt32, UInt32) = (0, 0)) {
        let fields: [UInt32] = [UInt32(ino), mode, 0, 0, mode & 0o170000 == 0o040000 ? 2 : 1, 0, UInt32(data.count), 0, 0, rdev.0, rdev.1, UInt32(name.utf8.count + 1), 0]
        ino += 1
        out += Array("070701".utf8)
        for f in fields { out += Array(String(format: "%08x", f).utf8) }
        out += Array(name.utf8) + [0]
        while out.count % 4 != 0 { out.append(0) }
        out += data
        while out.count % 4 != 0 { out.append(0) }
    }

    mutating func directory(_ name: String) { entry(name, mode: 0o040755) }
    mutating func file(_ name: String, _ data: [UInt8], mode: UInt32) { entry(name, mode: 0o100000 | mode, data: data) }
    mutating func device(_ name: String, major: UInt32, minor: UInt32) { entry(name, mode: 0o020600, rdev: (major, minor)) }
    mutating func finish() -> [UInt8] {
        entry("TRAILER!!!", mode: 0)
        return out
    }
}

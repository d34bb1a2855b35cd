import Foundation

extension Snapshot {
    /// Imports umockdev's `.umockdev` format (from `umockdev-record`): one
    /// paragraph per device with `P:` (its /devices path), `A:` text attributes
    /// (`\n` escaped), `H:` hex attributes and `L:` links; `E:`, `N:` and `S:`
    /// lines describe udev and /dev and are not part of sysfs, so they are skipped.
    public static func importUmockdev(_ text: String, source: String = "umockdev") throws -> Snapshot {
        var entries: [Entry] = []
        var dirs = Set<String>()
        var device: String?
        func addDir(_ path: String) {
            var prefix = ""
            for part in path.split(separator: "/") {
                prefix += (prefix.isEmpty ? "" : "/") + part
                if dirs.insert(prefix).inserted { entries.append(Entry(path: prefix, kind: .dir, mode: "755")) }
            }
        }
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            guard line.count >= 3, line.dropFirst().hasPrefix(": ") else { continue }
            let tag = line.first!, value = String(line.dropFirst(3))
            func at() -> String { "line \(number + 1)" }
            switch tag {
            case "P":
                guard value.hasPrefix("/devices/"), !value.split(separator: "/").contains("..") else {
                    throw SnapshotError("\(at()): P: must be a /devices/... path, got '\(value)'")
                }
                device = "sys" + value
                addDir(device!)
            case "A", "H", "L":
                guard let device else { throw SnapshotError("\(at()): \(tag): before any P: line") }
                guard let eq = value.firstIndex(of: "=") else { throw SnapshotError("\(at()): expected name=value") }
                let name = String(value[..<eq]), content = String(value[value.index(after: eq)...])
                guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                    throw SnapshotError("\(at()): attribute '\(name)' leaves its device")
                }
                let path = device + "/" + name
                addDir(String(path.split(separator: "/").dropLast().joined(separator: "/")))
                switch tag {
                case "A":
                    entries.append(Entry(path: path, kind: .file, mode: "644", content: content.replacingOccurrences(of: "\\n", with: "\n")))
                case "H":
                    var bytes: [UInt8] = []
                    var chars = Array(content)
                    guard chars.count % 2 == 0 else { throw SnapshotError("\(at()): H: value has an odd number of hex digits") }
                    while !chars.isEmpty {
                        guard let b = UInt8(String(chars.prefix(2)), radix: 16) else { throw SnapshotError("\(at()): H: value is not hex") }
                        bytes.append(b)
                        chars.removeFirst(2)
                    }
                    entries.append(Entry(path: path, kind: .file, mode: "644", base64: Data(bytes).base64EncodedString()))
                default:
                    entries.append(Entry(path: path, kind: .link, mode: "777", target: content))
                }
            default:
                continue
            }
        }
        guard !entries.isEmpty else { throw SnapshotError("no P: device paragraphs found; is this a .umockdev file?") }
        return Snapshot(source: source, entries: entries)
    }
}

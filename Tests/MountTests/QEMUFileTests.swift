import Foundation
import Testing

/// `mdevsim extract` on QEMU migration files built here byte by byte, as QEMU 7.2 lays them out.
@Suite("QEMU migration files", .requires(haveMdevsimBinary, "needs the mdevsim binary"))
struct QEMUFileTests {
    static func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).reversed().map { UInt8((v >> (8 * UInt64($0))) & 0xff) } }
    static func str(_ s: String) -> [UInt8] { [UInt8(s.utf8.count)] + Array(s.utf8) }

    /// QEVM v3, the configuration, one RAM block of one page, a dummy device by its VMDESCRIPTION,
    /// the vGPU's live sections (device data `payload` in two chunks) and its config state.
    static func file(payload: [UInt8], footerID: UInt32? = nil) -> [UInt8] {
        var f = Array("QEVM".utf8) + be(3, 4)
        f += [0x07] + be(10, 4) + Array("pc-q35-7.2".utf8)
        f += [0x01] + be(2, 4) + str("ram") + be(0, 4) + be(4, 4)
        f += be(4096 | 0x04, 8) + str("pc.ram") + be(4096, 8) + be(0x10, 8)           // MEM_SIZE, EOS
        f += [0x7e] + be(2, 4)
        f += [0x02] + be(2, 4) + be(0 | 0x08, 8) + str("pc.ram") + [UInt8](repeating: 7, count: 4096) + be(0x10, 8) + [0x7e] + be(2, 4)
        f += [0x01] + be(3, 4) + str("0000:00:01.0/vfio") + be(0, 4) + be(1, 4)
        f += be(0xffff_ffff_ef10_0003, 8) + be(0xffff_ffff_ef10_0001, 8) + [0x7e] + be(3, 4)
        let half = payload.count / 2
        f += [0x03] + be(3, 4) + be(0xffff_ffff_ef10_0004, 8) + be(UInt64(half), 8) + payload[..<half]
        f += be(0xffff_ffff_ef10_0004, 8) + be(UInt64(payload.count - half), 8) + payload[half...] + be(0xffff_ffff_ef10_0001, 8) + [0x7e] + be(3, 4)
        f += [0x04] + be(4, 4) + str("timer") + be(0, 4) + be(2, 4) + [UInt8](repeating: 1, count: 24)
        f += [0x05] + str("timer/dmastate") + be(1, 4) + [2, 2] + [0x7e] + be(UInt64(footerID ?? 4), 4)
        var config = [UInt8](repeating: 0, count: 276)
        config[4] = 0x86; config[5] = 0x80; config[6] = 0x1d; config[7] = 0x59
        f += [0x04] + be(5, 4) + str("0000:00:01.0/vfio") + be(0, 4) + be(1, 4)
        f += be(0xffff_ffff_ef10_0002, 8) + config + be(0xffff_ffff_ef10_0001, 8) + [0x7e] + be(5, 4)
        f += [0x00]
        let desc = #"{"page_size": 4096, "devices": [{"name": "timer", "instance_id": 0, "vmsd_name": "timer", "version": 2, "fields": [{"name": "a", "type": "int64", "size": 8, "array_len": 3}], "subsections": [{"vmsd_name": "timer/dmastate", "version": 1, "fields": [{"name": "b", "type": "uint8", "size": 1}, {"name": "c", "type": "uint8", "size": 1}]}]}, {"name": "0000:00:01.0/vfio", "instance_id": 0, "vmsd_name": null, "fields": [{"name": "data", "type": "buffer", "size": 292}]}]}"#
        f += [0x06] + be(UInt64(desc.utf8.count), 4) + Array(desc.utf8)
        return f
    }

    func write(_ bytes: [UInt8]) throws -> String {
        let path = makeTempDirectory("qemufile") + "/vm.mig"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("extract walks every section to the device data, its passes and QEMU's PCI config")
    func walk() throws {
        let payload = (0..<1000).map { UInt8($0 % 251) }
        let path = try write(Self.file(payload: payload))
        let r = try run(mdevsimBinary, ["extract", path, "-o", path + ".blob", "--json"])
        #expect(r.status == 0, "\(r)")
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path + ".blob"))) == payload)
        let out = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect(out?["machine"] as? String == "pc-q35-7.2")
        #expect((out?["sections"] as? [[String: Any]])?.map { $0["name"] as? String ?? "" } == ["ram", "ram", "0000:00:01.0/vfio", "0000:00:01.0/vfio", "timer", "0000:00:01.0/vfio"])
        let device = (out?["devices"] as? [[String: Any]])?.first
        #expect(device?["passes"] as? [Int] == [0, 1000])
        #expect((device?["pci_config"] as? String)?.hasPrefix("86801d59") == true)
    }

    @Test("a section whose sizes do not land on its footer, or a file cut short, is refused with where and why")
    func refused() throws {
        let bad = try run(mdevsimBinary, ["extract", try write(Self.file(payload: [1, 2, 3], footerID: 9)), "-o", "/dev/null"])
        #expect(bad.status != 0 && bad.err.contains("section 'timer' (id 4)") && bad.err.contains("does not end on its footer"), "\(bad)")
        let whole = Self.file(payload: [1, 2, 3])
        let cut = try run(mdevsimBinary, ["extract", try write(Array(whole.prefix(200))), "-o", "/dev/null"])
        #expect(cut.status != 0 && cut.err.contains("ends at byte 200"), "\(cut)")
        let none = try run(mdevsimBinary, ["inspect", try write(Array("QEVM".utf8) + Self.be(3, 4) + [0x00])])
        #expect(none.status != 0 && none.err.contains("holds no VFIO device"), "\(none)")
    }
}
